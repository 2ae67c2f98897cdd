"""A loopback stand-in for the ModelScope hub: the endpoints `modelscope.snapshot_download`
(modelscope 1.40, whose client is modelscope_hub 0.5) calls, and nothing else.

No real ModelScope server can be run locally (the hub is a closed service), so this is written
from the client's own source: modelscope_hub/_legacy_api.py (the listing and the file URL) and
modelscope_hub/_download.py (what it checks). What the client relies on, and this serves:

- GET /api/v1/models/{owner}/{name}/repo/files?Revision=R&Recursive=True[&Root=dir]
  -> {"Code": 200, "Success": true, "Data": {"Files": [{"Path", "Name", "Type": "blob",
     "Size", "Sha256" (lowercase), "Revision"}]}}. The client filters by its allow patterns
     itself; it needs exact sizes and hashes.
- GET /api/v1/models/{owner}/{name}/repo?Revision=R&FilePath=path -> the raw bytes, with
  Range support (the client resumes `.incomplete` files with `Range: bytes=n-`).
- GET /api/v1/models/{owner}/{name} -> repo info (asked when a Root-scoped listing 404s).
- Errors as HTTP status codes with the JSON error body: the client treats a 200 with
  `"Success": false` as an empty repo, so a real error must not be a 200.
- Anything else (the region probe /api/v1/repos/internalAccelerationInfo) -> 404, which the
  client ignores.

Threaded (the client downloads four files at once) and HTTP/1.1 with Content-Length (it keeps
connections alive). `requests` records every path asked for.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import re
import threading
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from tests.helpers.servers import _ServerThread

_ROUTE = re.compile(r"/api/v1/models/([^/]+/[^/]+)(/repo/files|/repo)?")


class ModelScopeHub(_ServerThread):
    """Serves `repos` (model id -> folder) at revision `master` (and any name in `revisions`)."""

    def __init__(self, repos: dict[str, Path], revisions: tuple[str, ...] = ("master",)) -> None:
        self.repos = repos
        self.revisions = revisions
        self.requests: list[str] = []
        self.lock = threading.Lock()
        self.corrupt: set[str] = set()  # paths served with one byte flipped (hash mismatch)
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                with hub.lock:
                    hub.requests.append(self.path)
                status, body, headers = hub.answer(self.path, self.headers.get("Range"))
                if isinstance(body, dict):
                    body = json.dumps(body).encode()
                    headers = {"Content-Type": "application/json", **headers}
                self.send_response(status)
                for key, value in {**headers, "Content-Length": str(len(body))}.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

        super().__init__(Handler)

    def files(self, repo: str) -> dict[str, Path]:
        root = self.repos[repo]
        return {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*"))
                if p.is_file()}  # fmt: skip

    def answer(self, path: str, ranged: str | None) -> tuple[int, dict | bytes, dict[str, str]]:
        url = urlsplit(path)
        query = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        match = _ROUTE.fullmatch(unquote(url.path))
        if match is None:
            return _error(404, "not found")
        repo, suffix = match.groups()
        if repo not in self.repos:
            return _error(404, f"model {repo} not exist")
        if suffix is None:
            owner, name = repo.split("/")
            return 200, {"Code": 200, "Success": True, "Data": {"Path": owner, "Name": name}}, {}
        revision = query.get("Revision", "master")
        if revision not in self.revisions:
            return _error(404, f"revision {revision} not found")
        files = self.files(repo)
        if suffix == "/repo/files":
            root = query.get("Root", "").strip("/")
            listed = [_entry(p, f.read_bytes(), revision) for p, f in files.items()
                      if not root or p.startswith(root + "/")]  # fmt: skip
            if root and not listed:
                return _error(404, f"path {root} not found")
            return 200, {"Code": 200, "Message": "success", "Success": True,
                         "Data": {"Files": listed}}, {}  # fmt: skip
        wanted = query.get("FilePath", "")
        if wanted not in files:
            return _error(404, f"file {wanted} not found")
        data = files[wanted].read_bytes()
        if wanted in self.corrupt:
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        octet = {"Content-Type": "application/octet-stream"}
        span = re.fullmatch(r"bytes=(\d+)-(\d*)", ranged or "")
        if span is None:
            return 200, data, octet
        start = int(span.group(1))
        end = min(int(span.group(2) or len(data) - 1), len(data) - 1)
        if start >= len(data):
            return 416, b"", {**octet, "Content-Range": f"bytes */{len(data)}"}
        return (
            206,
            data[start : end + 1],
            {**octet, "Content-Range": f"bytes {start}-{end}/{len(data)}"},
        )

    def downloads(self) -> list[str]:
        """The file paths downloaded (not listings)."""
        with self.lock:
            asked = list(self.requests)
        return [unquote(parse_qs(urlsplit(p).query)["FilePath"][0]) for p in asked
                if "FilePath=" in p]  # fmt: skip


def _entry(path: str, data: bytes, revision: str) -> dict:
    return {"Name": path.rsplit("/", 1)[-1], "Path": path, "Type": "blob", "Size": len(data),
            "Sha256": hashlib.sha256(data).hexdigest(), "Revision": revision}  # fmt: skip


def _error(status: int, message: str) -> tuple[int, dict, dict[str, str]]:
    return status, {"Code": status, "Message": message, "RequestId": "stand-in",
                    "Success": False}, {}  # fmt: skip
