"""Catalogues of loopback stand-ins for the mirror tests, what a venv has installed, a captive
portal, and invoke configuration naming several custom mirrors."""

from __future__ import annotations

import http.server
import threading
from pathlib import Path
from typing import Any

import yaml

from i2vkit.mirrors.catalogue import Catalogue, from_data

SLOW_S = 0.4  # the slow mirror's delay per request; the fast ones answer in milliseconds
VARIANT = "cu126"
PORTAL_PAGE = (
    b"<!doctype html><html><head><title>Guest Wi-Fi</title></head><body>"
    b"<h1>Welcome</h1><p>Accept the terms to continue.</p>"
    b"<form method='post' action='/login'><input name='room'><button>Connect</button></form>"
    b"<a href='/terms.html'>terms</a></body></html>"
)


def catalogue_for(urls: dict[str, str], torch_url: str | None = None) -> Catalogue:
    """A catalogue of PyPI mirrors at `urls` (in that order); `aliyun` gets the torch page."""
    mirror: dict = {name: {"pypi": {"url": f"{url}/simple"}} for name, url in urls.items()}
    if torch_url and "aliyun" in mirror:
        mirror["aliyun"]["torch"] = {
            "url": torch_url + "/{variant}",
            "layout": "find-links",
            "variants": [VARIANT],
        }
    probe = {"pypi_project": "alpha", "torch_variant": VARIANT, "sample_bytes": 65536}
    return from_data({"order": list(urls), "probe": probe, "mirror": mirror}, "test catalogue")


def installed(venv: Path) -> set[str]:
    site = next((venv / "lib").glob("python*/site-packages"))
    return {p.name.split("-")[0].lower() for p in site.glob("*.dist-info")}


class CaptivePortal:
    """A captive portal: every path, GET or HEAD, answers 200 with the same HTML login page
    (what a hotel or office network serves until someone logs in). `paths` records the GETs."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        seen = self.paths

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_HEAD(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(PORTAL_PAGE)))
                self.end_headers()

            def do_GET(self) -> None:
                seen.append(self.path)
                self.do_HEAD()
                self.wfile.write(PORTAL_PAGE)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def mirrors_config(path: Path, mirrors: dict[str, dict[str, Any]]) -> Path:
    """An invoke runtime config (INVOKE_RUNTIME_CONFIG) naming several custom mirrors, in order."""
    path.write_text(yaml.safe_dump({"mirrors": mirrors}, sort_keys=False))
    return path
