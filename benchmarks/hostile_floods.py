"""The hostile pass's phases that need time, sockets or order (benchmarks/hostile.py): half-sent
requests and stalled bodies (they wait on the server's clock), cancels of a queued and a running
job, event streams beside a POST, a burst past the queue, kill -9 mid-queue and the restart, the
wait for every accepted job to end, and the server's memory sampled throughout.

Each phase waits for the queue room it needs first; kill -9 and the memory need a server this
process started (a `Server`), not one given by --url.
"""

from __future__ import annotations

import contextlib
import selectors
import signal
import socket
import threading
import time
from collections import Counter
from functools import partial

import psutil
from hostile_core import (
    FINAL,
    FORM,
    PNG,
    Answer,
    Tally,
    Target,
    accepted,
    call,
    job,
    room,
    run,
    status,
    until,
    view,
)

from tests.helpers.api import SMALL
from tests.helpers.server import Server

HALF_SENT_WAIT = 20.0  # a half-sent request must be closed within this (the server's is 10 s)
STREAMS = 50


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
