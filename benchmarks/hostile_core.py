"""The hostile pass's common ground (benchmarks/hostile.py): the server under attack (`Target`),
the counts (`Tally`), a case's shape, the ways to send one and the small waits on a job or the
queue.

A case is (name, expected answer, a function answering (accepted job ids, status code)); the
expected answer is a list of codes or classes ("202,429", "4xx"), or "" for anything but a 5xx.
A request goes through httpx, as raw bytes on a socket (ids and framing httpx would clean up),
or as a body streamed while a second thread reads (an early answer must not be lost). Assumes
the repo root is on sys.path (hostile.py puts it there) for `tests.helpers`.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from tests.helpers import api
from tests.helpers.api import SMALL, png
from tests.helpers.server import Server

FINAL = ("succeeded", "failed", "cancelled")
CAP = 20 * 2**20  # `serve`'s default --max-upload-mb: the bodies "over the cap" pass it
PNG = png()
FORM = "Content-Type: multipart/form-data; boundary=b0und\r\n"
Answer = tuple[list[str], int]
Case = tuple[str, str, Callable[[], Answer]]  # name, expected ("4xx", "202,429"; "": not 5xx)


class Target:
    """A server to attack: its URL, its token, and our `Server` when we started it."""

    def __init__(self, url: str, token: str | None = None, server: Server | None = None):
        self.token, self.server = token, server
        self.connect(url)

    def connect(self, url: str) -> None:
        self.url = url
        auth = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        self.http = httpx.Client(base_url=url, headers=auth, timeout=60,
                                 limits=httpx.Limits(max_connections=32))  # fmt: skip
        parts = urlsplit(url)
        self.address = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.host = parts.netloc

    def auth(self) -> str:
        return f"Authorization: Bearer {self.token}\r\n" if self.token else ""


@dataclass
class Tally:
    codes: Counter[int] = field(default_factory=Counter)
    accepted: dict[str, str] = field(default_factory=dict)  # job id -> the case that made it
    deleted: set[str] = field(default_factory=set)  # removed on purpose: not lost
    unexpected: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, name: str, expect: str, answer: Answer) -> int:
        ids, code = answer
        with self.lock:
            self.codes[code] += 1
            self.accepted.update(dict.fromkeys(ids, name))
            if not _matches(code, expect):
                wanted = expect or "not 5xx"
                self.unexpected.append(f"{name}: {code or 'no answer'} (expected {wanted})")
        return code


def _matches(code: int, expect: str) -> bool:
    if not expect:
        return 0 < code < 500
    return any(code // 100 == int(e[0]) if e.endswith("xx") else code == int(e)
               for e in expect.split(","))  # fmt: skip


def run(tally: Tally, cases: list[Case], workers: int = 8) -> None:
    def one(case: Case) -> None:
        name, expect, send = case
        try:
            answer = send()
        except (httpx.HTTPError, OSError) as error:  # no answer: a finding of its own kind
            answer, name = ([], 0), f"{name} [{type(error).__name__}]"
        tally.add(name, expect, answer)

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, cases))


# requests ------------------------------------------------------------------------------------


def call(t: Target, method: str, path: str, creates: bool = False, **kw: Any) -> Answer:
    r = t.http.request(method, path, **kw)
    ids: list[str] = []
    if creates and r.is_success:
        body = r.json()
        ids = [body["id"]] if isinstance(body, dict) and "id" in body else []
    return ids, r.status_code


def job(t: Target, fields: dict[str, Any] | None = None, image: bytes = PNG, **kw: Any) -> Answer:
    files = kw.pop("files", None) or {"image": ("in.png", image, "image/png")}
    data = {**SMALL, **(fields or {})}
    return call(t, "POST", "/v1/jobs", creates=True, data=data, files=files, **kw)


def video(t: Target, fields: dict[str, Any], image: bytes | None = PNG, **kw: Any) -> Answer:
    files = {"input_reference": ("in.png", image, "image/png")} if image is not None else None
    data = {"size": "64x64", "seconds": "0.5", "steps": "3", **fields}
    return call(t, "POST", "/v1/videos", creates=True, data=data, files=files, **kw)


def raw(t: Target, data: bytes, timeout: float = 60) -> Answer:
    """Send `data` as it is on a new connection; the answer's status (0: none)."""
    with socket.create_connection(t.address, timeout=timeout) as sock:
        sock.sendall(data)
        head = b""
        while b"\r\n" not in head:
            chunk = sock.recv(4096)
            if not chunk:
                break
            head += chunk
    return [], int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/1.1 ") else 0


def raw_get(t: Target, method: str, target: str) -> Answer:
    return raw(t, f"{method} {target} HTTP/1.1\r\nHost: {t.host}\r\n{t.auth()}"
                  "Connection: close\r\nContent-Length: 0\r\n\r\n".encode())  # fmt: skip


def upload(t: Target, path: str, chunks: Iterator[bytes], headers: str) -> Answer:
    """Stream a body while a second thread reads: the server may answer (413, 401) before the
    body ends and close, and the answer must not be lost to the broken pipe."""
    status: list[int] = []
    with socket.create_connection(t.address, timeout=60) as sock:

        def read() -> None:
            head = b""
            with contextlib.suppress(OSError):
                while b"\r\n" not in head:
                    chunk = sock.recv(4096)
                    if not chunk:
                        break
                    head += chunk
            status.append(int(head.split(b" ")[1]) if head[:5] == b"HTTP/" else 0)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        with contextlib.suppress(OSError):
            sock.sendall(f"POST {path} HTTP/1.1\r\nHost: {t.host}\r\n{headers}\r\n".encode())
            for chunk in chunks:
                if status:
                    break
                sock.sendall(chunk)
        reader.join(60)
    return [], status[0] if status else 0


def chunked(size: int) -> Iterator[bytes]:
    """A multipart body of one image part of `size` bytes, as HTTP chunks."""
    head = (b'--b0und\r\nContent-Disposition: form-data; name="image"; filename="big.png"\r\n'
            b"Content-Type: image/png\r\n\r\n")  # fmt: skip
    block = b"\0" * 65536
    yield b"%x\r\n%s\r\n" % (len(head), head)
    for _ in range(size // len(block) + 1):
        yield b"%x\r\n%s\r\n" % (len(block), block)
    yield b"0\r\n\r\n"


# waits ---------------------------------------------------------------------------------------


def view(t: Target, job_id: str) -> dict[str, Any] | None:
    r = t.http.get(f"/v1/jobs/{job_id}", timeout=30)
    return r.json() if r.status_code == 200 else None


def status(t: Target, job_id: str) -> str:
    return (view(t, job_id) or {"status": "gone"})["status"]


def until(check: Callable[[], Any], timeout: float, every: float = 0.25) -> Any:
    """The tests' bounded wait, but a timeout is no error here: the tally, which counts what
    never happened (lost jobs, open sockets), says it. None then."""
    with contextlib.suppress(TimeoutError):
        return api.until(check, "a hostile phase's wait", timeout=timeout, every=every)
    return None


def room(t: Target, free: int, timeout: float = 150) -> None:
    """Wait until the queue has `free` places (a phase that must not meet a full queue)."""

    def enough() -> bool:
        queue = t.http.get("/v1/info", timeout=30).json()["queue"]
        return queue["size"] - queue["depth"] >= free

    until(enough, timeout)


def accepted(tally: Tally, name: str, answer: Answer, expect: str = "202") -> str | None:
    tally.add(name, expect, answer)
    return answer[0][0] if answer[0] else None
