"""The hostile pass (issue 17) as a script: a few hundred hostile requests at a real server, and
the counts that say whether it held.

    python benchmarks/hostile.py [--url URL [--token T]] [--cases-scale 1] [--keep] [--json FILE]

Without --url it builds the demo twin in a temp home and starts `invoke serve --model demo
--device cpu` on loopback (the default queue size and upload cap), and a second one with a
token for the token's cases; with --url it attacks a server already running, with --token when
that one has a token (the token's cases then run against it), and kill -9, memory and the log
are not measured. A case is a small function answering (accepted job ids, status code); the
kinds: settings, images, ids on every job route, methods on every path, cancels, bodies over the
cap, the token, foreign Host and Origin, half-sent requests, 50 event streams beside a POST, the
OpenAI videos API, a burst past the queue, and kill -9 mid-queue then a restart on the same home.
Then every accepted job must end succeeded, failed or cancelled (one deleted on purpose through
DELETE /v1/videos is not lost). Exit 1 on a 5xx, a lost job, a "Traceback" in a server's log or
a half-sent connection left open; an answer other than the case expected is listed, not fatal.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import hmac
import io
import json
import random
import secrets
import selectors
import shutil
import signal
import socket
import struct
import sys
import tempfile
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import psutil  # noqa: E402
from PIL import Image  # noqa: E402

from i2vkit import request  # noqa: E402
from tests.helpers.api import SMALL, png  # noqa: E402
from tests.helpers.server import Server  # noqa: E402

FINAL = ("succeeded", "failed", "cancelled")
CAP = 20 * 2**20  # `serve`'s default --max-upload-mb: the bodies "over the cap" pass it
HALF_SENT_WAIT = 20.0  # a half-sent request must be closed within this (the server's is 10 s)
STREAMS = 50
SETTLE_SECONDS = 240.0
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


# the cases -----------------------------------------------------------------------------------


def settings_cases(t: Target, scale: float) -> list[Case]:
    cases: list[Case] = []
    for name, (low, high) in request.bounds().items():
        for value in (low - 1, high + 1, "abc", "1e999", "nan", "-inf", "9" * 400, "[1]", "3;4"):
            label = f"settings {name}={str(value)[:20]}"
            cases.append((label, "4xx", partial(job, t, {name: value})))
    mb, limits = "x" * 1_000_000, request.bounds()
    named: list[tuple[str, str, dict[str, Any]]] = [
        ("prompt of 1 MB", "4xx", {"prompt": mb}),
        ("prompt of 2 MB (over the form's part limit)", "4xx", {"prompt": mb * 2}),
        ("negative_prompt of 2001 chars", "4xx", {"negative_prompt": "n" * 2001}),
        ("prompt with NUL, RTL and emoji", "202,429", {"prompt": "a\0b\u202e\U0001f600"}),
        ("scheduler unknown", "4xx", {"scheduler": "nope"}),
        ("scheduler of 17 chars", "4xx", {"scheduler": "s" * 17}),
        ("preset unknown", "4xx", {"preset": "nope"}),
        ("preset of 40 chars", "4xx", {"preset": "p" * 40}),
        ("preset ../../etc", "4xx", {"preset": "../../etc"}),
        ("unknown fields (/v1/jobs ignores them)", "202,429", {"foo": "1", "__class__": "y"}),
        ("every field out of range", "4xx", {k: high * 2 + 1 for k, (_, high) in limits.items()}),
        ("height not a multiple of the model's 64", "4xx", {"height": "80"}),
        ("a size past the largest (1600x1600)", "4xx", {"height": "1600", "width": "1600"}),
    ]
    cases += [(n, e, partial(job, t, f)) for n, e, f in named]
    image = ("in.png", PNG, "image/png")
    odd: list[tuple[str, str, Any]] = [
        ("prompt of non-UTF-8 bytes", "422", {"image": image, "prompt": (None, b"\xff\xfe\x80")}),
        ("several image fields", "4xx", [("image", image), ("image", image)]),
        ("1001 files", "4xx", [("image", image)] * 1001),
        ("an image part without a filename", "4xx", {"image": (None, PNG)}),
    ]
    cases += [(n, e, partial(job, t, files=files)) for n, e, files in odd]
    bare: list[tuple[str, dict[str, Any]]] = [
        ("no image field", {"data": SMALL}),
        ("an empty body", {}),
        ("a JSON body", {"json": {**SMALL, "image": "aGVsbG8="}}),
        ("2000 form fields", {"data": dict.fromkeys(map(str, range(2000)), "1"),
                              "files": {"image": image}}),
        ("multipart without a boundary",
         {"content": b"x", "headers": {"Content-Type": "multipart/form-data"}}),
    ]  # fmt: skip
    cases += [(n, "4xx", partial(call, t, "POST", "/v1/jobs", True, **kw)) for n, kw in bare]
    twice = {"data": {**SMALL, "steps": ["3", "4"]}, "files": {"image": image}}
    cases.append(("a field sent twice", "", partial(call, t, "POST", "/v1/jobs", True, **twice)))
    for limit in ("0", "201", "-1", "abc", "1" + "0" * 30, "1e3", "200"):
        expect = "200" if limit == "200" else "4xx"
        send = partial(call, t, "GET", "/v1/jobs", params={"limit": limit})
        cases.append((f"GET /v1/jobs?limit={limit[:12]}", expect, send))
    return cases + random_settings(t, int(60 * scale))


def random_settings(t: Target, n: int) -> list[Case]:
    """`n` requests with 1 to 4 fields set to hostile values at random (seeded)."""
    rng = random.Random(17)  # noqa: S311 - a repeatable fuzz, not a secret
    names = [*request.bounds(), "scheduler", "prompt", "negative_prompt", "preset"]
    pool = [-1, 0, 2**31, 2**64, -(2**63), "1e999", "nan", "-inf", "abc", " 3", "3 ", "0x10",
            "1_0", "\u0663", "true", "null", "[]", "{}", "\0", "9" * 5000, "3.5", "-0"]  # fmt: skip
    cases: list[Case] = []
    for i in range(n):
        fields = {name: rng.choice(pool) for name in rng.sample(names, rng.randint(1, 4))}
        cases.append((f"random settings #{i} {list(fields)}", "", partial(job, t, fields)))
    return cases


def pictures() -> dict[str, tuple[str, bytes]]:
    """Hostile first frames: name -> (expected answer, bytes)."""

    def save(image: Image.Image, kind: str, **kw: Any) -> bytes:
        out = io.BytesIO()
        image.save(out, kind, **kw)
        return out.getvalue()

    rng = random.Random(5)  # noqa: S311
    noise = save(Image.frombytes("RGB", (256, 256), rng.randbytes(256 * 256 * 3)), "PNG")
    small = Image.new("RGB", (96, 64), (200, 80, 40))
    rotated = small.getexif()
    rotated[0x0112] = 6  # EXIF orientation: rotate 90 degrees
    frames = [small.convert("P")] * 3
    ok, no = "202,429", "4xx"
    return {
        "not an image (text)": (no, b"hello, this is not a picture"),
        "an empty file": (no, b""),
        "random bytes": (no, rng.randbytes(5000)),
        "an SVG": (no, b'<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"/>'),
        "a PNG signature only": (no, b"\x89PNG\r\n\x1a\n"),
        "a truncated PNG": (no, noise[: len(noise) // 2]),
        "a 1x20000 PNG": (no, save(Image.new("L", (1, 20000)), "PNG")),
        "a 20000x1 PNG": (no, save(Image.new("L", (20000, 1)), "PNG")),
        "a 6000x6000 JPEG": (ok, save(Image.new("RGB", (6000, 6000), (90, 140, 200)), "JPEG")),
        "a decompression bomb header (100000x100000)": (no, _png_header(100_000, 100_000)),
        "a PNG header of 41 MP (6400x6400)": (no, _png_header(6400, 6400)),
        "a zTXt bomb (50 MB of text in 50 KB)": (no, _ztxt_bomb(save(small, "PNG"))),
        "CMYK JPEG": (ok, save(Image.new("CMYK", (96, 64), (0, 100, 200, 10)), "JPEG")),
        "16-bit greyscale PNG": (ok, save(Image.new("I;16", (96, 64), 40000), "PNG")),
        "RGBA PNG": (ok, save(Image.new("RGBA", (96, 64), (1, 2, 3, 0)), "PNG")),
        "LA PNG": (ok, save(Image.new("LA", (96, 64)), "PNG")),
        "palette PNG, transparent": (ok, save(Image.new("P", (96, 64)), "PNG", transparency=0)),
        "1-bit PNG": (ok, save(Image.new("1", (96, 64)), "PNG")),
        "EXIF-rotated JPEG": (ok, save(small, "JPEG", exif=rotated.tobytes())),
        "animated GIF": (ok, save(frames[0], "GIF", save_all=True, append_images=frames)),
        "BMP": (ok, save(small, "BMP")),
        "TIFF": (ok, save(small, "TIFF")),
        "WebP": (ok, save(small, "WEBP")),
        "a 1x1 PNG": (ok, save(Image.new("RGB", (1, 1)), "PNG")),
        "a 16:1 PNG (1024x64)": (ok, save(Image.new("RGB", (1024, 64)), "PNG")),
        "a PNG with 1 MB of junk after IEND": (ok, save(small, "PNG") + b"\0" * 2**20),
    }


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_header(width: int, height: int) -> bytes:
    """A PNG that says it is width x height, with almost no pixel data behind it."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr)
            + _chunk(b"IDAT", zlib.compress(b"\0" * 4096)) + _chunk(b"IEND", b""))  # fmt: skip


def _ztxt_bomb(picture: bytes) -> bytes:
    text = _chunk(b"zTXt", b"bomb\0\0" + zlib.compress(b"0" * 50_000_000, 9))
    return picture[:33] + text + picture[33:]  # after the signature and IHDR


def image_cases(t: Target) -> list[Case]:
    cases: list[Case] = [(f"image: {name}", expect, partial(job, t, image=data))
             for name, (expect, data) in pictures().items()]  # fmt: skip
    over = PNG + b"\0" * (CAP + 1 - len(PNG))
    parts = [("a PNG named ../../etc/passwd", "202,429", ("../../etc/passwd", PNG, "image/png")),
             ("a PNG sent as text/html", "202,429", ("x.html", PNG, "text/html")),
             ("a PNG with a 5000-char name", "", ("n" * 5000 + ".png", PNG, "image/png")),
             ("an image of the cap + 1 byte", "413", ("big.png", over, "image/png"))]  # fmt: skip
    for name, expect, part in parts:
        cases.append((f"image: {name}", expect, partial(job, t, files={"image": part})))
    return cases


ROUTES = ("GET /v1/jobs/{}", "POST /v1/jobs/{}/cancel", "GET /v1/jobs/{}/events",
          "GET /v1/jobs/{}/video", "GET /v1/jobs/{}/input", "GET /v1/videos/{}",
          "DELETE /v1/videos/{}", "GET /v1/videos/{}/content",
          "GET /v1/videos?after={}")  # fmt: skip
IDS = ("../../etc/passwd", "..%2F..%2Fserver%2Fjobs.db", "%2e%2e%2f%2e%2e%2fjobs.db",
       "....//....//jobs.db", "A" * 22, "-" * 22, "_" * 22, "'%20OR%20'1'='1'%20--",
       "1;DROP%20TABLE%20jobs;--", "x' OR 1=1--", "x" * 8000, "%00", "%ff%fe%fd", "%E5%90%8D",
       "jobs.db", "..\\..\\jobs.db", "%0d%0aSet-Cookie:%20x=1", "{real}/../../jobs.db",
       "{real}%00", "{real}.mp4")  # fmt: skip


def id_cases(t: Target, real: str) -> list[Case]:
    """Each hostile id on each job route, sent byte for byte (httpx would resolve the dots)."""
    cases: list[Case] = []
    for route in ROUTES:
        method, path = route.split(" ")
        for bad in IDS:
            target = path.format(bad.format(real=real))
            cases.append((f"id {route} {bad[:30]}", "4xx", partial(raw_get, t, method, target)))
    return cases


PATHS = ("/", "/healthz", "/readyz", "/metrics", "/openapi.json", "/static/app.js",
         "/static/..%2f..%2fhttp.py", "/v1/info", "/v1/presets", "/v1/jobs", "/v1/jobs/{}",
         "/v1/jobs/{}/cancel", "/v1/jobs/{}/events", "/v1/jobs/{}/video", "/v1/jobs/{}/input",
         "/v1/videos", "/v1/videos/{}", "/v1/videos/{}/content", "/v1/videos/{}/remix",
         "/v1/login", "/nowhere")  # fmt: skip
METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "FOO")


def method_cases(t: Target, tally: Tally, ended: str) -> list[Case]:
    """Every method on every path; `ended` is a finished job of its own (DELETE removes it)."""

    def one(method: str, path: str) -> Answer:
        ids, code = call(t, method, path, timeout=30)
        if method == "DELETE" and path.startswith("/v1/videos/") and code == 200:
            tally.deleted.add(ended)
        return ids, code

    return [(f"method {m} {p}", "", partial(one, m, p.format(ended)))
            for p in PATHS for m in METHODS]  # fmt: skip


HOSTS = ("attacker.example", "attacker.example:{port}", "localhost.attacker.example",
         "127.0.0.1.nip.io", "", "a" * 5000, "[::1]", "2130706433",
         "127.0.0.1:1@attacker.example", "xn--80ak6aa92e.com")  # fmt: skip
ORIGINS = ("http://attacker.example", "null", "http://127.0.0.1:{other}", "file://",
           "http://localhost:{port}", None)  # fmt: skip
HOSTED = (("GET", "/v1/info"), ("GET", "/"), ("GET", "/healthz"), ("POST", "/v1/jobs"))


def header_cases(t: Target, tally: Tally, real: str) -> list[Case]:
    """A foreign Host (refused without a token: DNS rebinding) and a foreign Origin (refused on
    anything that changes state), on reads, writes, cancels and deletes."""
    port, cases = t.address[1], list[Case]()
    for host in (h.format(port=port) for h in HOSTS):
        literal = host == "[::1]" or t.token  # an IP literal, or a token that stands instead
        for method, path in HOSTED:
            expect = "2xx" if path == "/healthz" else "" if literal else "403"
            send = partial(job, t) if method == "POST" else partial(call, t, method, path)
            cases.append((f"Host {host[:30]!r} {method} {path}", expect,
                          partial(send, headers={"Host": host})))  # fmt: skip

    def delete(headers: dict[str, str]) -> Answer:
        ids, code = call(t, "DELETE", f"/v1/videos/{real}", headers=headers)
        if code == 200:
            tally.deleted.add(real)
        return ids, code

    writes: list[tuple[str, Callable[..., Answer]]] = [
        ("POST /v1/jobs", partial(job, t)),
        ("POST /v1/videos", partial(video, t, {})),
        ("POST /v1/login", partial(call, t, "POST", "/v1/login", data={"token": "x"})),
        ("POST cancel", partial(call, t, "POST", f"/v1/jobs/{real}/cancel")),
        ("DELETE /v1/videos/ID", delete),
    ]
    for origin in ORIGINS:
        headers = ({"Origin": origin.format(port=port, other=port + 1)} if origin
                   else {"Sec-Fetch-Site": "cross-site"})  # fmt: skip
        for name, write in writes:
            cases.append((f"{headers} {name}", "403", partial(write, headers=headers)))
    same, foreign = {"Origin": f"http://{t.host}"}, {"Origin": "http://attacker.example"}
    cases.append(("same Origin POST /v1/jobs", "202,429", partial(job, t, headers=same)))
    read = partial(call, t, "GET", "/v1/info", headers=foreign)
    cases.append(("foreign Origin GET", "200", read))
    return cases


def video_cases(t: Target, real: str) -> list[Case]:
    """The OpenAI-compatible API: bad size, seconds, model; missing input_reference."""
    cases: list[Case] = []
    for size in ("64", "64x", "x64", "0x0", "99999x99999", "64x64x64", "-64x64", "64X64",
                 " 64x64", "65x64", "1536x1537", "1e3x64", "x" * 17):  # fmt: skip
        cases.append((f"videos size={size!r}", "4xx", partial(video, t, {"size": size})))
    for seconds in ("abc", "nan", "inf", "-1", "0", "1e308", "0x10", "999999", "1" * 17):
        send = partial(video, t, {"seconds": seconds})
        cases.append((f"videos seconds={seconds!r}", "4xx", send))
    for model in ("other", "x" * 201, "demo\0"):
        cases.append((f"videos model={model[:20]!r}", "4xx", partial(video, t, {"model": model})))
    named: list[tuple[str, str, dict[str, Any], bytes | None]] = [
        ("videos without input_reference", "4xx", {}, None),
        ("videos input_reference not an image", "4xx", {}, b"nope"),
        ("videos with height (size sets it)", "4xx", {"height": "64"}, PNG),
        ("videos with frames (seconds sets it)", "4xx", {"frames": "4"}, PNG),
        ("videos with an unknown field", "4xx", {"colour": "red"}, PNG),
        ("videos preset unknown", "4xx", {"preset": "nope"}, PNG),
        ("videos steps=0", "4xx", {"steps": "0"}, PNG),
        ("videos size in fullwidth digits", "", {"size": "\uff16\uff14x\uff16\uff14"}, PNG),
        ("videos valid (64x64, 0.5 s)", "200,429", {}, PNG),
    ]
    cases += [(n, e, partial(video, t, f, image)) for n, e, f, image in named]
    for query in ({"limit": "0"}, {"limit": "101"}, {"limit": "abc"}, {"order": "sideways"},
                  {"after": "A" * 22}, {"after": "../x"},
                  {"limit": "100", "order": "asc"}):  # fmt: skip
        expect = "200" if query.get("limit") == "100" else "4xx"
        send = partial(call, t, "GET", "/v1/videos", params=query)
        cases.append((f"videos list {query}", expect, send))
    thumb = partial(call, t, "GET", f"/v1/videos/{real}/content", params={"variant": "thumb"})
    cases.append(("videos content variant=thumb", "404", thumb))
    cases.append(("videos remix", "404", partial(call, t, "POST", f"/v1/videos/{real}/remix")))
    return cases


def body_cases(t: Target) -> list[Case]:
    """Bodies over the upload cap (chunked: no length to refuse them by), and bad framing."""
    over, chunks = CAP + 2**20, "Transfer-Encoding: chunked\r\n"
    cases: list[Case] = [
        (f"chunked {over >> 20} MiB to {path}", "413",
         partial(upload, t, path, chunked(over), FORM + t.auth() + chunks))
        for path in ("/v1/jobs", "/v1/videos", "/v1/login")
    ]  # fmt: skip
    huge = FORM + t.auth() + "Content-Length: 1000000000000\r\n"
    send = partial(upload, t, "/v1/jobs", iter([b"x"]), huge)
    cases.append(("Content-Length 10^12", "413", send))
    post = f"POST /v1/jobs HTTP/1.1\r\nHost: {t.host}\r\n{t.auth()}Connection: close\r\n"
    get = post.replace("POST /v1/jobs", "GET /")
    framing = {
        "Content-Length -1": (post + "Content-Length: -1\r\n\r\n", "400"),
        "Content-Length and chunked":
            (post + "Content-Length: 5\r\n" + chunks + "\r\n0\r\n\r\n", ""),
        "a bad chunk size in a form": (post + FORM + chunks + "\r\nzz\r\n", "400"),
        "a bad chunk size, no Content-Type": (post + chunks + "\r\nzz\r\n", "400"),
        "a bad chunk size to /v1/login":
            (post.replace("/v1/jobs", "/v1/login") + chunks + "\r\nzz\r\n", "400"),
        "a request line of 20 KB": (get.replace("GET /", "GET /" + "a" * 20000) + "\r\n", "4xx"),
        "100 KB of headers": (get + f"X-Pad: {'p' * 100_000}\r\n\r\n", ""),
        "HTTP/1.0 without Host": ("GET /healthz HTTP/1.0\r\n\r\n", ""),
        "a TLS hello": ("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + "\0" * 200, "4xx"),
    }  # fmt: skip
    for name, (data, expect) in framing.items():
        cases.append((name, expect, partial(raw, t, data.encode("latin-1"))))
    return cases


def stalled_body(t: Target, path: str) -> int:
    """Headers promising 5000 bytes, then the start of an image part and silence: the server
    should answer 408 once the body has been idle for 20 s."""
    part = (b'--b0und\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n'
            b"Content-Type: image/png\r\n\r\n" + PNG[:16])  # fmt: skip
    head = f"POST {path} HTTP/1.1\r\nHost: {t.host}\r\n{t.auth()}{FORM}Content-Length: 5000\r\n\r\n"
    with socket.create_connection(t.address, timeout=45) as sock:
        sock.sendall(head.encode() + part)
        answer = sock.recv(4096)
    return int(answer.split(b" ")[1]) if answer.startswith(b"HTTP/") else 0


def _cookie(token: str, expires: int) -> str:
    """A session cookie signed as the server signs one (guard.session), here an expired one."""
    mac = hmac.new(token.encode(), f"i2vkit-session:{expires}".encode(), hashlib.sha256)
    return f"i2vkit_session={expires}.{mac.hexdigest()}"


def token_cases(t: Target, tally: Tally) -> None:
    """On a server with a token: every protected route without it or with a wrong one (401,
    before any body is read), the open ones without it, the session cookie, the login's limit."""
    token = t.token or ""
    basic = base64.b64encode(f"u:{token}".encode()).decode()
    wrongs = {"none": {}, "wrong bearer": {"Authorization": "Bearer wrong"},
              "token + x": {"Authorization": f"Bearer {token}x"},
              "token less a char": {"Authorization": f"Bearer {token[:-1]}"},
              "no space": {"Authorization": f"Bearer{token}"},
              "Basic": {"Authorization": f"Basic {basic}"},
              "Token scheme": {"Authorization": f"Token {token}"},
              "cookie garbage": {"Cookie": "i2vkit_session=garbage"},
              "cookie forged": {"Cookie": "i2vkit_session=99999999999.deadbeef"},
              "cookie expired, signed": {"Cookie": _cookie(token, int(time.time()) - 3600)},
              "cookie malformed": {"Cookie": 'i2vkit_session="; ;=='},
              "Authorization of 10 KB": {"Authorization": "Bearer " + "t" * 10_000}}  # fmt: skip
    bare = httpx.Client(base_url=t.url, timeout=60)  # never sends the token by itself
    unknown = "A" * 22
    protected = [("GET", "/v1/info"), ("GET", "/v1/presets"), ("GET", "/v1/jobs"),
                 ("GET", f"/v1/jobs/{unknown}"), ("GET", "/metrics"), ("GET", "/v1/videos"),
                 ("GET", f"/v1/jobs/{unknown}/events"), ("GET", f"/v1/jobs/{unknown}/input"),
                 ("POST", "/v1/jobs"), ("POST", "/v1/videos")]  # fmt: skip

    def send(method: str, path: str, headers: dict[str, str], **kw: Any) -> Answer:
        return [], bare.request(method, path, headers=headers, **kw).status_code

    form = {"data": SMALL, "files": {"image": ("in.png", PNG, "image/png")}}
    cases: list[Case] = []
    for label, headers in wrongs.items():
        for method, path in protected:
            kw = form if method == "POST" else {}
            send_it = partial(send, method, path, headers, **kw)
            cases.append((f"token {label}: {method} {path}", "401", send_it))
        in_query = partial(send, "GET", "/v1/info", headers, params={"token": token})
        cases.append((f"token {label}: ?token= in the query", "401", in_query))
    for path in ("/", "/healthz", "/readyz", "/static/app.js"):
        cases.append((f"token none: GET {path} (open)", "2xx", partial(send, "GET", path, {})))
    stream = FORM + "Transfer-Encoding: chunked\r\n"
    over = partial(upload, t, "/v1/jobs", chunked(CAP + 2**20), stream)
    cases.append(("token none: a chunked body over the cap", "401", over))
    run(tally, cases)
    login = bare.post("/v1/login", data={"token": token})
    tally.add("token: login with the token", "200", ([], login.status_code))
    cookie = {"Cookie": f"i2vkit_session={login.cookies.get('i2vkit_session', '')}"}
    tally.add("token: the session cookie", "200", send("GET", "/v1/info", cookie))
    for i in range(6):  # one after another: five failures a minute, then 429
        answer = send("POST", "/v1/login", {}, data={"token": f"guess{i}"})
        tally.add(f"token: wrong login {i + 1}", "401" if i < 5 else "429", answer)
    bare.close()


# phases that need time or order ----------------------------------------------------------------

HALVES = (b"", b"G", b"GET /v1/info HTTP/1.1\r\n",
          b"GET /v1/info HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ",
          b"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n" + FORM.encode(),
          b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGET /v1/in")  # fmt: skip


def half_sent(t: Target, n: int) -> tuple[int, int]:
    """`n` connections that send part of a request's headers and stop (one kind after a whole
    request); how many the server closed within HALF_SENT_WAIT s, of those opened."""
    selector, opened = selectors.DefaultSelector(), []
    for i in range(n):
        sock = socket.create_connection(t.address, timeout=10)
        sock.sendall(HALVES[i % len(HALVES)])
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
        opened.append(sock)
    closed, deadline = 0, time.monotonic() + HALF_SENT_WAIT
    while closed < n and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=max(0.0, deadline - time.monotonic())):
            data = b""
            with contextlib.suppress(OSError):
                data = key.fileobj.recv(65536)  # type: ignore[union-attr]
            if not data:  # closed (an answer first is fine: the keep-alive kind has one)
                selector.unregister(key.fileobj)
                closed += 1
    for sock in opened:
        sock.close()
    return closed, n


def view(t: Target, job_id: str) -> dict[str, Any] | None:
    r = t.http.get(f"/v1/jobs/{job_id}", timeout=30)
    return r.json() if r.status_code == 200 else None


def status(t: Target, job_id: str) -> str:
    return (view(t, job_id) or {"status": "gone"})["status"]


def until(check: Callable[[], Any], timeout: float, every: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(every)
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


def cancels(t: Target, tally: Tally, ended: str) -> None:
    """Cancel a queued, a running (ten times at once) and an ended job; delete each kind."""
    room(t, 3)
    running = accepted(tally, "cancel: a long job", job(t, {"steps": "150", "frames": "8"}))
    queued = accepted(tally, "cancel: a job behind it", job(t))
    if not running or not queued:
        return
    until(lambda: status(t, running) == "running", 150)
    tally.add("cancel a queued job", "202", call(t, "POST", f"/v1/jobs/{queued}/cancel"))
    tally.add("cancel it again (ended)", "409", call(t, "POST", f"/v1/jobs/{queued}/cancel"))
    answer = call(t, "DELETE", f"/v1/videos/{queued}")
    if tally.add("DELETE /v1/videos of a cancelled job", "200", answer) == 200:
        tally.deleted.add(queued)
    at_once = partial(call, t, "POST", f"/v1/jobs/{running}/cancel")
    run(tally, [("cancel a running job (x10 at once)", "202,409", at_once)] * 10)
    answer = call(t, "DELETE", f"/v1/videos/{running}")
    tally.add("DELETE /v1/videos of a running job", "409,200", answer)
    until(lambda: status(t, running) in (*FINAL, "gone"), 60)
    tally.add("cancel a cancelled job", "409,404", call(t, "POST", f"/v1/jobs/{running}/cancel"))
    tally.add("cancel a succeeded job", "409", call(t, "POST", f"/v1/jobs/{ended}/cancel"))
    if status(t, running) == "gone":
        tally.deleted.add(running)  # the DELETE above removed it once it had stopped


def streams(t: Target, tally: Tally) -> tuple[float, float]:
    """A POST's latency alone, then beside STREAMS open event streams on a long job."""
    room(t, 3)
    start = time.perf_counter()
    accepted(tally, "POST alone", job(t))
    alone = time.perf_counter() - start
    long = accepted(tally, "streams: a long job", job(t, {"steps": "150", "frames": "16"}))
    if not long:
        return alone, float("nan")
    line = f"GET /v1/jobs/{long}/events HTTP/1.1\r\nHost: {t.host}\r\n{t.auth()}\r\n".encode()
    socks = []
    try:
        for _ in range(STREAMS):
            socks.append(socket.create_connection(t.address, timeout=30))
            socks[-1].sendall(line)
        for i, sock in enumerate(socks):
            head = sock.recv(4096)
            code = int(head.split(b" ")[1]) if head.startswith(b"HTTP/") else 0
            tally.add(f"event stream {i}", "200", ([], code))
        start = time.perf_counter()
        accepted(tally, f"POST beside {STREAMS} streams", job(t))
        beside = time.perf_counter() - start
    finally:
        for sock in socks:
            sock.close()
        call(t, "POST", f"/v1/jobs/{long}/cancel")
    return alone, beside


def burst(t: Target, tally: Tally, extra: int) -> tuple[int, int, int]:
    """Valid tiny jobs past the queue's size at once: (accepted, 429s, 429s with Retry-After)."""
    size = t.http.get("/v1/info", timeout=30).json()["queue"]["size"]
    room(t, size, timeout=300)  # from an empty queue: `size` accepted, the rest refused
    waits: list[int] = []

    def one() -> Answer:
        r = t.http.post("/v1/jobs", data=SMALL, files={"image": ("in.png", PNG, "image/png")})
        if r.status_code == 429 and r.headers.get("Retry-After", "").isdigit():
            waits.append(int(r.headers["Retry-After"]))
        return ([r.json()["id"]] if r.status_code == 202 else []), r.status_code

    before = Counter(tally.codes)
    run(tally, [(f"burst of {size + extra}", "202,429", one)] * (size + extra))
    got = tally.codes - before
    return got[202], got[429], sum(w >= 1 for w in waits)


def kill_and_restart(t: Target, tally: Tally, rss: Rss) -> int:
    """kill -9 the server mid-queue (a job mid-run, three queued), then start it again on the
    same home; the number of jobs not final at the kill."""
    assert t.server is not None
    size = t.http.get("/v1/info", timeout=30).json()["queue"]["size"]
    room(t, size, timeout=300)  # an empty queue: the first job runs at once
    ids = [accepted(tally, "kill -9: a job mid-run", job(t, {"steps": "20", "frames": "8"}))]
    ids += [accepted(tally, f"kill -9: queued {i}", job(t, {"seed": str(i)})) for i in range(3)]
    first = ids[0]
    if first:
        until(lambda: (view(t, first) or {}).get("progress", {}).get("step", 0) >= 2, 180)
    unfinished = sum(status(t, i) not in FINAL for i in ids if i)
    t.server.kill(signal.SIGKILL)
    flags = t.server.args[t.server.args.index("--port") + 2 :]
    again = Server(t.server.home, *flags).start()
    rss.servers.append(again)
    t.server = again
    t.connect(again.url)
    return unfinished


def settle(t: Target, tally: Tally, timeout: float) -> tuple[Counter[str], list[str]]:
    """Every accepted job's end: (final statuses, lost ids: gone or never final)."""
    pending, ends, gone = set(tally.accepted), Counter[str](), []
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for job_id in sorted(pending):
            r = t.http.get(f"/v1/jobs/{job_id}", timeout=30)
            if r.status_code == 404:
                pending.discard(job_id)
                if job_id not in tally.deleted:
                    gone.append(job_id)
            elif r.status_code == 200 and r.json()["status"] in FINAL:
                ends[r.json()["status"]] += 1
                pending.discard(job_id)
        time.sleep(0.5)
    return ends, gone + sorted(pending)


class Rss(threading.Thread):
    """The server's memory (its process and its children: the workers), sampled 4 times a
    second: at start and at its peak, over every server of the pass (a restart included)."""

    def __init__(self, server: Server) -> None:
        super().__init__(daemon=True)
        self.servers, self.start_mib, self.peak_mib = [server], 0.0, 0.0
        self.stopping = threading.Event()

    def sample(self) -> float:
        try:
            root = psutil.Process(self.servers[-1].proc.pid)  # type: ignore[union-attr]
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return 0.0
        total = 0
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                total += proc.memory_info().rss
        return total / 2**20

    def run(self) -> None:
        self.start_mib = self.peak_mib = self.sample()
        while not self.stopping.wait(0.25):
            self.peak_mib = max(self.peak_mib, self.sample())


# the pass ------------------------------------------------------------------------------------


def start_servers(home: Path) -> tuple[Target, Target]:
    """The plain server and the token's, both on loopback, started side by side."""
    from i2vkit.runtime import twins

    twins.save(home / "plain" / "models" / "demo", "i2vgen-xl")
    shutil.copytree(home / "plain", home / "token")
    token = secrets.token_hex(16)
    plain = Server(home / "plain").start(wait=False)
    guarded = Server(home / "token", "--token", token).start(wait=False)
    plain.wait_ready(180)
    guarded.wait_ready(180)
    return Target(plain.url, server=plain), Target(guarded.url, token, guarded)


def log(started: float, what: str) -> None:
    print(f"[{time.monotonic() - started:6.1f} s] {what}", file=sys.stderr, flush=True)


def background(t: Target, tally: Tally, scale: float,
               halves: list[tuple[int, int]]) -> list[threading.Thread]:  # fmt: skip
    """What waits 20 s on the server's clock, run beside the rest: half-sent requests, and
    bodies that stall."""

    def stall(path: str) -> None:
        name = f"a body stalled after its first bytes: {path}"
        tally.add(name, "408", ([], stalled_body(t, path)))

    threads = [threading.Thread(target=lambda: halves.append(half_sent(t, int(40 * scale))))]
    threads += [threading.Thread(target=stall, args=(p,)) for p in ("/v1/jobs", "/v1/videos")]
    for thread in threads:
        thread.start()
    return threads


def attack(t: Target, guarded: Target | None, tally: Tally, scale: float,
           started: float) -> dict[str, Any]:  # fmt: skip
    """Every phase, in an order that keeps the queue from being full when it must not be."""
    out: dict[str, Any] = {}
    ended = accepted(tally, "a job to read back", job(t))
    doomed = accepted(tally, "a job for the methods (DELETE removes it)", job(t))
    assert ended and doomed, "the server accepted no job: is it ready?"
    halves: list[tuple[int, int]] = []
    waiting = background(t, tally, scale, halves)
    until(lambda: status(t, ended) in FINAL, 120)
    log(started, "cancels")  # first: the long job then runs at once, with nothing ahead of it
    cancels(t, tally, ended)
    log(started, "images")
    run(tally, image_cases(t), workers=3)
    until(lambda: all(status(t, i) in (*FINAL, "gone") for i in (ended, doomed)), 120)
    log(started, "settings, ids, methods, headers, videos, bodies")
    run(tally, [*settings_cases(t, scale), *id_cases(t, ended), *method_cases(t, tally, doomed),
                *header_cases(t, tally, ended), *video_cases(t, ended),
                *body_cases(t)])  # fmt: skip
    if guarded is not None:
        log(started, "the token")
        token_cases(guarded, tally)
    log(started, f"{STREAMS} event streams beside a POST")
    out["post_alone_s"], out["post_beside_streams_s"] = streams(t, tally)
    log(started, "a burst past the queue")
    counts = burst(t, tally, int(8 * scale))
    out["burst_accepted"], out["burst_429"], out["burst_429_with_retry_after"] = counts
    for thread in waiting:
        thread.join()
    out["half_sent_closed"], out["half_sent_opened"] = halves[0] if halves else (0, 0)
    return out


def traceback_lines(servers: list[Server]) -> list[str]:
    lines = (s.log.read_text(errors="replace").splitlines() for s in servers if s.log.exists())
    return [line for log_lines in lines for line in log_lines if "Traceback" in line]


def table(c: dict[str, Any]) -> str:
    answers = " / ".join(str(c["answers"][k]) for k in ("2xx", "3xx", "4xx", "5xx", "none"))
    ends = " / ".join(str(c["ends"].get(k, 0)) for k in FINAL)
    rss = c["rss_start_mib"] is not None
    kill = c["unfinished_at_kill"] is not None
    rows = [
        ("cases run", c["cases"]),
        ("answers 2xx / 3xx / 4xx / 5xx / none", answers),
        ("**5xx** (must be 0)", c["answers"]["5xx"]),
        ("accepted jobs (succeeded / failed / cancelled; deleted on purpose)",
         f"{c['accepted']} ({ends}; {c['deleted']})"),
        ("**lost jobs** (accepted, then gone or never final)", c["lost"]),
        ("half-sent connections closed within 20 s / opened",
         f"{c['half_sent_closed']} / {c['half_sent_opened']}"),
        (f"POST latency alone / beside {STREAMS} event streams",
         f"{c['post_alone_s']:.2f} s / {c['post_beside_streams_s']:.2f} s"),
        ("burst past the queue: 202 / 429 (429 with Retry-After)",
         f"{c['burst_accepted']} / {c['burst_429']} ({c['burst_429_with_retry_after']})"),
        ("kill -9 mid-queue: jobs not final at the kill; all final after the restart",
         f"{c['unfinished_at_kill']}; {'no' if c['lost'] else 'yes'}" if kill else "n/a"),
        ("server RSS at start / peak (its process and workers)",
         f"{c['rss_start_mib']:.0f} MiB / {c['rss_peak_mib']:.0f} MiB" if rss else "n/a"),
        ('"Traceback" lines in the servers\' logs',
         "n/a" if c["tracebacks"] is None else c["tracebacks"]),
        ("answers other than the case expected (listed below; not fatal)", len(c["unexpected"])),
        ("run time", f"{c['seconds']:.0f} s"),
    ]  # fmt: skip
    return "\n".join(["| measure | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)])


def count(tally: Tally, ends: Counter[str], lost: list[str], rss: Rss | None,
          servers: list[Server]) -> dict[str, Any]:  # fmt: skip
    classes = Counter({2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}.get(code // 100, "none")
                      for code in tally.codes.elements())  # fmt: skip
    return {
        "cases": sum(tally.codes.values()),
        "answers": {k: classes[k] for k in ("2xx", "3xx", "4xx", "5xx", "none")},
        "accepted": len(tally.accepted),
        "deleted": len(tally.deleted & set(tally.accepted)),
        "ends": dict(ends),
        "lost": len(lost),
        "lost_ids": lost,
        "rss_start_mib": rss.start_mib if rss else None,
        "rss_peak_mib": rss.peak_mib if rss else None,
        "tracebacks": len(traceback_lines(servers)) if servers else None,
        "unexpected": tally.unexpected,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="attack this server instead of starting one")
    parser.add_argument("--token", help="the --url server's token (its token cases run too)")
    parser.add_argument("--cases-scale", type=float, default=1.0, help="more or fewer cases")
    parser.add_argument("--keep", action="store_true", help="keep the temp home (logs, jobs)")
    parser.add_argument("--json", type=Path, help="write the counts to this file as JSON")
    args = parser.parse_args()
    started, tally = time.monotonic(), Tally()
    home = Path(tempfile.mkdtemp(prefix="i2vkit-hostile-"))
    servers: list[Server] = []
    rss: Rss | None = None
    try:
        if args.url:
            t = Target(args.url.rstrip("/"), args.token)
            guarded = t if args.token else None
        else:
            log(started, f"starting two servers in {home}")
            t, guarded = start_servers(home)
            servers += [t.server, guarded.server]  # type: ignore[list-item]
            rss = Rss(servers[0])
            rss.start()
        out = attack(t, guarded, tally, args.cases_scale, started)
        if guarded is not t and guarded.server is not None:  # type: ignore[union-attr]
            guarded.server.stop()  # type: ignore[union-attr]  # done: its core back to the rest
        out["unfinished_at_kill"] = None
        if rss is not None:
            log(started, "kill -9 mid-queue and a restart")
            out["unfinished_at_kill"] = kill_and_restart(t, tally, rss)
            servers.append(t.server)  # type: ignore[arg-type]
        log(started, f"waiting for {len(tally.accepted)} accepted jobs to end")
        ends, lost = settle(t, tally, SETTLE_SECONDS)
        if rss is not None:
            rss.stopping.set()
        out |= count(tally, ends, lost, rss, servers)
        out["seconds"] = time.monotonic() - started
    finally:
        for server in servers:
            server.stop()
    print(table(out))
    for line in tally.unexpected:
        print(f"  unexpected: {line}")
    for job_id in lost:
        print(f"  lost: {job_id} ({tally.accepted[job_id]})")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, default=str))
    failed = (out["answers"]["5xx"] or lost or out["tracebacks"]
              or out["half_sent_closed"] < out["half_sent_opened"])  # fmt: skip
    for server in servers if failed else []:
        if server.log.exists():
            tail = server.log.read_text(errors="replace").splitlines()[-80:]
            print(f"\n--- {server.log} (its last 80 lines) ---", *tail, sep="\n")
    if args.keep:
        print(f"kept: {home}")
    else:
        shutil.rmtree(home, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
