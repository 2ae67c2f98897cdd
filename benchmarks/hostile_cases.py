"""The hostile pass's request cases (benchmarks/hostile.py), each a list of `Case`s to run at
once: settings out of range or malformed (and a seeded fuzz of them), hostile ids on every job
route, every method on every path, a foreign Host and Origin, the OpenAI videos API, bodies over
the cap and bad framing, and on a server with a token, every way of not having it.

They assume the order hostile.py runs them in: `real` and `ended` are jobs that have ended, and
the queue has room for the few valid jobs among them (a full one answers 429, also expected).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import httpx
from hostile_core import (
    CAP,
    FORM,
    PNG,
    Answer,
    Case,
    Tally,
    Target,
    call,
    chunked,
    job,
    raw,
    raw_get,
    run,
    upload,
    video,
)

from i2vkit import request
from tests.helpers.api import SMALL


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
