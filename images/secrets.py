"""Giving the HF token to the build's weights step without it entering the image.

The Engine API's builder (the classic one, which the Python SDK drives) has no secret mounts,
and a build arg or a file would put the token in the history or a layer. So the token is
served over the build host's loopback by a one-shot HTTP server for the duration of the build:
the weights step (images/weights_step.py, run with host networking) reads it once into its
child's environment, where huggingface_hub takes it as HF_TOKEN. The URL the build sees is the
same for every build (a fixed port and path), so it never changes the step's cache key, and it
is useless afterwards: the server answers one request, then 410, and stops with the build.

Tokens come from huggingface_hub's own lookup (`get_token`): HF_TOKEN, then its token file
(HF_TOKEN_PATH, or $HF_HOME/token as `hf auth login` writes it). They are never printed, only where
they came from.
"""

from __future__ import annotations

import http.server
import os
import threading
from types import TracebackType

from i2vkit.errors import PortBusyError

TOKEN_PORT = 47861
ROUTE = "/hf-token"


def find_token() -> tuple[str, str] | None:
    """(token, where it came from) as huggingface_hub finds it (`get_token`: HF_TOKEN, then its
    token file, HF_TOKEN_PATH or the one `hf auth login` writes); None when there is none. Only
    the source is ever shown."""

    from huggingface_hub import constants, get_token

    token = get_token()
    if not token:
        return None
    if os.environ.get("HF_TOKEN", "").strip() == token:
        return token, "HF_TOKEN"
    return token, f"huggingface_hub's token file ({constants.HF_TOKEN_PATH})"


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
            why = f"{error.strerror or error} (the HF token is served there to the build)"
            raise PortBusyError("127.0.0.1", port, why, "free that port and build again") from error
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
