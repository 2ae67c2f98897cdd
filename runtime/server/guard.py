"""What every request passes before the app sees it: an ASGI middleware around the whole app.

A pure ASGI middleware, not FastAPI dependencies: a dependency runs after FastAPI has read and
parsed the body, so a client without a token could make the server spool a gigabyte to disk
before its 401, and a chunked body (no Content-Length) was only measured once it was all there.
Here, in order:

1. Host: without a token, only a loopback name or an IP literal (and `--allow-host` names) may
   be the Host: a DNS-rebound name (attacker.example -> 127.0.0.1) reads nothing.
2. Origin: a state-changing request from another origin (a page's no-cors form POST) is refused.
3. The token, for /v1/* (but /v1/login) and /metrics: from the headers, before any body byte.
4. The body: capped while it streams (413), timed out when the client stalls (408), and a
   multipart form's text fields checked for UTF-8 as they pass (Starlette's parser decodes a
   field that is not as Latin-1 without a word, so mojibake was stored as the prompt).
5. The answer: CSP, nosniff, no framing, no referrer, same-origin resources; an exception
   nothing handled is a JSON 500 from here, with those headers too (Starlette's own 500 comes
   from its outermost middleware, outside this one, and had none).

Slow headers are uvicorn's side (protocol.py): the app never sees a request that never ends.
"""

from __future__ import annotations

import asyncio
import codecs
import hashlib
import hmac
import ipaddress
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urlsplit

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

log = logging.getLogger("i2vkit.server")

COOKIE = "i2vkit_session"
SESSION_SECONDS = 12 * 3600
BODY_IDLE_SECONDS = 20.0  # a body that sends nothing for this long is a stalled client: 408
BODY_SECONDS = 300.0  # nor may a body take longer than this in all (20 MiB at ~70 KB/s)
DRAIN_BYTES = 1024 * 1024  # read before answering early, so the answer is not lost to a reset
SAFE = ("GET", "HEAD", "OPTIONS")
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-resource-policy", b"same-origin"),
]


class Refused(Exception):
    """The request ends here with `status` and `detail` (and headers)."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, headers or {}


class _BodyEnded(Exception):
    """Raised inside the app's receive(): the body went over its cap or stalled."""


def session(token: str, now: float | None = None) -> str:
    """A cookie value that proves the token was given, without being it: its expiry and an
    HMAC of that expiry keyed by the token (a stolen cookie ends; the token is never in it)."""
    expires = int((now or time.time()) + SESSION_SECONDS)
    return f"{expires}.{_sign(token, expires)}"


def _sign(token: str, expires: int) -> str:
    message = f"i2vkit-session:{expires}".encode()
    return hmac.new(token.encode(), message, hashlib.sha256).hexdigest()


def _session_ok(token: str, value: str) -> bool:
    expires, _, mac = value.partition(".")
    # ASCII digits, at most 12 ("²" is a digit to isdigit(); 5000 nines is a ValueError)
    if not re.fullmatch(r"[0-9]{1,12}", expires) or int(expires) < time.time():
        return False
    return hmac.compare_digest(mac, _sign(token, int(expires)))


def token_ok(token: str, headers: dict[str, str]) -> bool:
    """A bearer token equal to `token`, or a live session cookie."""
    header = headers.get("authorization", "")
    if header[:7].lower() == "bearer ":
        return hmac.compare_digest(header[7:].strip().encode(), token.encode())
    cookie = SimpleCookie()
    try:
        cookie.load(headers.get("cookie", ""))
    except Exception:  # a malformed Cookie header is no session
        return False
    return COOKIE in cookie and _session_ok(token, cookie[COOKIE].value)


HOST = re.compile(r"([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?")


def host_ok(host: str, allowed: tuple[str, ...]) -> bool:
    """Host header (name[:port]) is loopback's name, an IP literal, or allowed by name; no
    userinfo, path or fragment tricks (`evil@127.0.0.1`, `127.0.0.1#.evil`)."""
    if not HOST.fullmatch(host):
        return False
    name = urlsplit(f"//{host}").hostname or ""
    if name in ("localhost", *allowed):
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def protected(path: str) -> bool:
    return (path.startswith("/v1/") and path != "/v1/login") or path == "/metrics"


class Guard:
    def __init__(self, app: Any, token: str | None, max_body: int,
                 allowed_hosts: tuple[str, ...] = ()) -> None:  # fmt: skip
        self.app = app
        self.token = token
        self.max_body = max_body
        self.allowed_hosts = allowed_hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: dict[str, str] = {}
        for key, value in scope["headers"]:  # the first of a repeated header, as Starlette
            headers.setdefault(key.decode("latin-1"), value.decode("latin-1"))
        secured = _secured(send)
        try:
            self.check(scope, headers)
        except Refused as refused:
            # read (and drop) the body first, within bounds, so the answer is not lost to the
            # reset a close on unread bytes causes: a declared size over the cap up to 4 caps
            # (a client that sends all before it reads, as httpx, then gets its 413), else 1 MiB
            length = headers.get("content-length", "")
            over = refused.status == 413 and re.fullmatch(r"[0-9]{1,18}", length)
            most = min(int(length), 4 * self.max_body) if over else DRAIN_BYTES
            await _Body(receive, {}, self.max_body).drain(most)
            await _answer(secured, refused)
            return
        if scope["method"] == "HEAD":  # as GET without its body (FastAPI routes GET only)
            if scope["path"].endswith("/events"):
                await _answer(secured, Refused(405, "HEAD is not served on an event stream"))
                return
            scope, secured = {**scope, "method": "GET"}, _headless(secured)
        body = _Body(receive, headers, self.max_body)
        has_body = headers.get("content-length", "0") != "0" or "transfer-encoding" in headers
        started = False

        async def quiet(message: Message) -> None:
            nonlocal started
            # the app's own answer to a cut body is ours; to a client that is gone (or that
            # uvicorn already answered 400 for a malformed chunk), nobody's: sending it raised
            # h11's LocalProtocolError, twice logged
            if body.ended or body.gone:
                return
            if message["type"] == "http.response.start" and has_body and not body.done:
                # answered before its body was read (a refusal, a 404): read a little of it
                # first (closing on unread bytes resets the connection, and the client loses
                # the answer), then, if it is still not over, the connection ends with this
                # answer, or the client could trickle the body forever
                await body.drain()
                if not body.done:
                    message = {**message, "headers": [*message.get("headers", []),
                                                      (b"connection", b"close")]}  # fmt: skip
            started = started or message["type"] == "http.response.start"
            await secured(message)

        try:
            await self.app(scope, body, quiet)
        except Exception as error:
            if not body.ended:
                if started:  # mid-answer: nothing to send but the cut, as uvicorn does
                    raise
                log.error("request failed: %s %s", scope["method"], scope["path"], exc_info=error)
                await _answer(secured, Refused(500, f"internal error: {type(error).__name__}; "
                                                    "the server's log has more"))  # fmt: skip
                return
        if body.ended:
            if not body.gone:  # as above: the answer must not be lost to a reset
                await body.drain()
            await _answer(secured, body.ended)

    def check(self, scope: Scope, headers: dict[str, str]) -> None:
        """Refused when the Host, the Origin or the token is not right, or the body is known
        to be too large: all before reading the body."""
        probe = scope["path"] in ("/healthz", "/readyz")  # a probe may name the service
        if not self.token and not probe and not host_ok(headers.get("host", ""),
                                                        self.allowed_hosts):  # fmt: skip
            raise Refused(403, f"Host {headers.get('host', '')[:80]!r} is not this server's: "
                          "use http://127.0.0.1:PORT, or serve with --allow-host NAME")  # fmt: skip
        if scope["method"] not in SAFE:
            origin = headers.get("origin")
            ours = (headers.get("host"), *self.allowed_hosts)  # a proxy may rewrite Host
            source = urlsplit(origin or "")
            if origin is not None and source.netloc not in ours and source.hostname not in ours:
                raise Refused(403, f"a request from another origin ({origin[:80]}) is refused")
            if headers.get("sec-fetch-site") == "cross-site":
                raise Refused(403, "a cross-site request is refused")
        if self.token and protected(scope["path"]) and not token_ok(self.token, headers):
            raise Refused(401, "an API token is required", {"WWW-Authenticate": "Bearer"})
        length = headers.get("content-length", "")
        if re.fullmatch(r"[0-9]{1,18}", length) and int(length) > self.max_body:
            raise Refused(413, f"the request body is over {self.max_body // 2**20} MiB")


class _Body:
    """The app's receive(), counting the body and timing it: over the cap or stalled, it
    raises and the request is answered 413 or 408 (`ended`); `done` once the body has ended."""

    def __init__(self, receive: Receive, headers: dict[str, str], cap: int) -> None:
        self.receive, self.cap = receive, cap
        self.seen, self.start, self.done = 0, time.monotonic(), False
        self.ended: Refused | None = None
        self.gone = False  # the client left (or the connection broke)
        self.text = _TextFields.for_headers(headers)

    async def drain(self, most: int = DRAIN_BYTES, seconds: float = 2.0) -> None:
        """Read and drop up to `most` bytes of what is left of the body, for `seconds`."""
        deadline, dropped = time.monotonic() + seconds, 0
        while not self.done and dropped < most and time.monotonic() < deadline:
            try:
                message = await asyncio.wait_for(self.receive(), deadline - time.monotonic())
            except TimeoutError:
                return
            dropped += len(message.get("body", b""))
            self.done = message["type"] != "http.request" or not message.get("more_body")
            self.gone = message["type"] == "http.disconnect"

    async def __call__(self) -> Message:
        if self.done:  # after the body: only a disconnect is left to wait for, untimed
            return await self.receive()
        left = BODY_SECONDS - (time.monotonic() - self.start)
        try:
            message = await asyncio.wait_for(self.receive(), min(BODY_IDLE_SECONDS, max(left, 0)))
        except TimeoutError:
            self.ended = Refused(408, "the request body stalled: send it faster or smaller")
            raise _BodyEnded from None
        if message["type"] != "http.request":
            self.done, self.gone = True, message["type"] == "http.disconnect"
            return message
        chunk = message.get("body", b"")
        self.seen += len(chunk)
        self.done = not message.get("more_body", False)
        if self.seen > self.cap:
            self.ended = Refused(413, f"the request body is over {self.cap // 2**20} MiB")
            raise _BodyEnded
        if self.text is not None and (bad := self.text.feed(chunk)):
            self.ended = Refused(422, f"the form field {bad!r} is not UTF-8 text: send it "
                                      "UTF-8 encoded")  # fmt: skip
            raise _BodyEnded
        return message


class _TextFields:
    """python-multipart's streaming parser (public callbacks) run beside Starlette's, only to
    check that each text field (a part without a filename) is UTF-8. Its data is decoded
    incrementally and dropped; a file's bytes only pass through."""

    @classmethod
    def for_headers(cls, headers: dict[str, str]) -> _TextFields | None:
        from python_multipart.multipart import parse_options_header

        kind, params = parse_options_header(headers.get("content-type", ""))
        boundary = params.get(b"boundary")
        return cls(boundary) if kind == b"multipart/form-data" and boundary else None

    def __init__(self, boundary: bytes) -> None:
        from python_multipart.multipart import MultipartParser

        self.bad: str | None = None
        self._broken = False
        self._field, self._value, self._disposition = b"", b"", b""
        self._decoder: codecs.IncrementalDecoder | None = None
        callbacks: Any = {
            "on_part_begin": self._begin, "on_header_field": self._header_field,
            "on_header_value": self._header_value, "on_header_end": self._header_end,
            "on_headers_finished": self._headers_done, "on_part_data": self._data,
            "on_part_end": self._end,
        }  # fmt: skip
        self._parser = MultipartParser(boundary, callbacks)

    def feed(self, chunk: bytes) -> str | None:
        """The name of a field that is not UTF-8, once one is seen."""
        if self.bad is None and chunk and not self._broken:
            try:
                self._parser.write(chunk)
            except Exception:  # malformed framing: Starlette's parser answers for that
                self._broken = True
        return self.bad

    def _begin(self) -> None:
        self._disposition, self._decoder = b"", None

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        if self._field.lower() == b"content-disposition":
            self._disposition = self._value
        self._field, self._value = b"", b""

    def _headers_done(self) -> None:
        from python_multipart.multipart import parse_options_header

        _, params = parse_options_header(self._disposition)
        self._name = params.get(b"name", b"").decode("latin-1")
        if b"filename" not in params:  # a text field
            self._decoder = codecs.getincrementaldecoder("utf-8")()

    def _data(self, data: bytes, start: int, end: int) -> None:
        self._check(data[start:end], final=False)

    def _end(self) -> None:
        self._check(b"", final=True)

    def _check(self, data: bytes, final: bool) -> None:
        if self._decoder is None:
            return
        try:
            self._decoder.decode(data, final)
        except UnicodeDecodeError:
            self.bad, self._decoder = self._name, None


def _secured(send: Send) -> Send:
    async def secured(message: Message) -> None:
        if message["type"] == "http.response.start":
            present = {k.lower() for k, _ in message.get("headers", [])}
            extra = [(k, v) for k, v in HEADERS if k not in present]
            message = {**message, "headers": [*message.get("headers", []), *extra]}
        await send(message)

    return secured


def _headless(send: Send) -> Send:
    async def headless(message: Message) -> None:
        if message["type"] == "http.response.body":
            message = {**message, "body": b""}
        await send(message)

    return headless


async def _answer(send: Send, refused: Refused) -> None:
    # "error": the OpenAI shape, which the openai client reads its message from
    kind = "server_error" if refused.status >= 500 else "invalid_request_error"
    error = {"message": refused.detail, "type": kind, "code": refused.status}
    body = json.dumps({"detail": refused.detail, "error": error}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"connection", b"close")]  # fmt: skip
    headers += [(k.lower().encode(), v.encode()) for k, v in refused.headers.items()]
    await send({"type": "http.response.start", "status": refused.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
