"""Giving the HF token to the build's weights step without it entering the image.

The Engine API's builder (the classic one, which the Python SDK drives) has no secret mounts,
and a build arg or a file would put the token in the history or a layer. So the token is
served over the build host's loopback by a one-shot HTTP server for the duration of the build:
the weights step (images/weights_step.py, run with host networking) reads it once into its
child's environment, where huggingface_hub takes it as HF_TOKEN. The URL the build sees is the
same for every build (a fixed port and path), so it never changes the step's cache key, and it
is useless afterwards: the server answers one request, then 410, and stops with the build.

Tokens come from where huggingface_hub looks: HF_TOKEN, then the file HF_TOKEN_PATH, then
$HF_HOME/token (~/.cache/huggingface/token). They are never printed, only where they came from.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from i2vkit.errors import ConfigError

TOKEN_PORT = 47861
ROUTE = "/hf-token"


def find_token(environ: Mapping[str, str]) -> tuple[str, str] | None:
    """(token, where it came from), huggingface_hub's order; None when there is none."""
    if environ.get("HF_TOKEN", "").strip():
        return environ["HF_TOKEN"].strip(), "HF_TOKEN"
    home = environ.get("HF_HOME") or str(
        Path(environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "huggingface"
    )
    candidates = [
        ("HF_TOKEN_PATH", environ.get("HF_TOKEN_PATH")),
        ("HF_HOME/token", f"{home}/token"),
    ]
    for label, path in candidates:
        if path and Path(path).is_file():
            token = Path(path).read_text(encoding="utf-8").strip()
            if token:
                return token, f"{label} ({path})"
    return None


class TokenServer:
    """Serves `token` once at http://127.0.0.1:TOKEN_PORT/hf-token; use as a context manager."""

    def __init__(self, token: str, port: int = TOKEN_PORT) -> None:
        self.url = f"http://127.0.0.1:{port}{ROUTE}"
        self.served = 0
        lock = threading.Lock()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with lock:
                    first = self.path == ROUTE and owner.served == 0
                    if first:
                        owner.served += 1
                if not first:
                    self.send_error(410, "the token was served already")
                    return
                body = token.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:  # never log requests
                pass

        try:
            self._server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        except OSError as error:
            raise ConfigError(
                f"cannot serve the HF token to the build on 127.0.0.1:{port} ({error}); "
                "free that port and build again"
            ) from error
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> TokenServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
