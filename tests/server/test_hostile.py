"""The hostile pass's findings that need a real server process: slow clients, many event
streams, a full disk, retention while running, Retry-After. (The rest run in process, in
test_inprocess.py; the whole pass as a script with its counts: benchmarks/hostile.py.)"""

from __future__ import annotations

import io
import os
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
from PIL import Image

from i2vkit.runtime.server.store import JobStore
from tests.helpers.api import png, running, submit, until, wait


def _raw(url: str, data: bytes) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    sock.sendall(data)
    return sock


def test_half_sent_requests_are_closed_by_the_server(server):
    socks = [_raw(server.url, b"GET /v1/info HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ") for _ in
             range(40)]  # fmt: skip
    started = time.monotonic()
    try:
        for sock in socks:  # each ends when the server closes it (b""): headers' deadline
            assert sock.recv(1024) == b""
        assert time.monotonic() - started < 25
        assert httpx.get(f"{server.url}/v1/info", timeout=10).status_code == 200
    finally:
        for sock in socks:
            sock.close()
    # a body the route never reads cannot keep the connection: it ends with the answer
    unread = [_raw(server.url, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                               b"Content-Length: 1000000\r\n\r\nx") for _ in range(5)]  # fmt: skip
    try:
        for sock in unread:
            answer = b""
            while chunk := sock.recv(4096):  # until the server closes it
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 200") and b"connection: close" in answer
    finally:
        for sock in unread:
            sock.close()
    # a malformed chunk: uvicorn answers 400 itself; the app's late answer must not be sent
    # (it raised h11's LocalProtocolError: two tracebacks a request in the log)
    bad = _raw(server.url, b"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                           b"Transfer-Encoding: chunked\r\n\r\nzz\r\n")  # fmt: skip
    assert bad.recv(4096).startswith(b"HTTP/1.1 400")
    bad.close()
    time.sleep(1)
    assert "Traceback" not in server.log.read_text()


def test_fifty_event_streams_do_not_hold_up_other_requests(server):
    # runs while the streams listen (cancelled at the end)
    long = submit(server.url, steps="150", frames="32").json()["id"]
    request = f"GET /v1/jobs/{long}/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    streams = [_raw(server.url, request) for _ in range(50)]
    try:
        for sock in streams:
            assert b"200 OK" in sock.recv(4096)
        # each stream held a pool thread: sync routes and the image's decoding waited 97 s
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda _: httpx.get(f"{server.url}/v1/info", timeout=10),
                                    range(8)))  # fmt: skip
        assert all(a.status_code == 200 for a in answers)
        job = submit(server.url)  # httpx's 30 s timeout: before the fix this waited 97 s
        assert job.status_code == 202, job.text
        assert (job.json().get("queue") or {}).get("position", 0) >= 2, job.json()  # behind it
    finally:
        for sock in streams:
            sock.close()
        httpx.post(f"{server.url}/v1/jobs/{long}/cancel", timeout=10)
    wait(server.url, job.json()["id"])


def test_a_job_deleted_while_its_events_stream_ends_the_stream_saying_so(server):
    blocker = submit(server.url, steps="150", frames="32").json()["id"]
    running(server.url, blocker)
    queued = submit(server.url).json()["id"]
    kinds, deleted = [], None
    url = f"{server.url}/v1/jobs/{queued}/events"
    with httpx.stream("GET", url, timeout=30) as stream:
        for line in stream.iter_lines():  # until the server ends the stream
            if line.startswith("event: "):
                kinds.append(line[7:])
                if deleted is None:  # subscribed: now delete it
                    deleted = httpx.delete(f"{server.url}/v1/videos/{queued}", timeout=10)
    httpx.post(f"{server.url}/v1/jobs/{blocker}/cancel", timeout=10)
    assert deleted is not None and deleted.status_code == 200, deleted
    assert kinds[0] == "progress" and kinds[-1] == "deleted", kinds  # it raised mid-stream
    assert httpx.get(url, timeout=10).status_code == 404
    assert "Traceback" not in server.log.read_text()
    wait(server.url, blocker)


def test_a_full_queue_s_retry_after_is_when_the_running_job_ends(start_server):
    server = start_server("--queue-size", "2")
    first = submit(server.url).json()["id"]
    assert wait(server.url, first)["status"] == "succeeded"  # a duration to go by
    running = submit(server.url, steps="120").json()["id"]
    queued = submit(server.url).json()
    assert queued["queue"]["position"] == 2 and queued["queue"]["wait_seconds"] is not None

    def eta() -> float | None:
        view = httpx.get(f"{server.url}/v1/jobs/{running}", timeout=10).json()
        progress = view.get("progress") or {}
        # past the first steps: an ETA from two step times moves by seconds on a busy machine
        return progress.get("eta_seconds") if progress.get("step", 0) >= 10 else None

    before = until(eta, "the running job's ETA")
    refused = submit(server.url)
    after = eta() or before
    assert refused.status_code == 429
    # the queue had room again when the running job ended, not after every queued job: the
    # header is the ETA (read just before and after it, as the steps' pace moves it)
    assert 1 <= int(refused.headers["Retry-After"]) <= max(before, after) + 2, (
        refused.headers, before, after)  # fmt: skip
    httpx.post(f"{server.url}/v1/jobs/{running}/cancel", timeout=10)


def test_a_full_disk_is_a_clear_507_and_a_job_it_breaks_fails_as_storage(start_server):
    # every file the server writes stops at 400 KB: the disk is "full" for anything larger
    server = start_server("--retention-hours", "0.0005", file_limit=400_000)
    noise = Image.frombytes("RGB", (512, 512), os.urandom(512 * 512 * 3))
    upload = io.BytesIO()
    noise.save(upload, "PNG")
    full = submit(server.url, image=upload.getvalue(), height="512", width="512")
    assert full.status_code == 507, full.text  # was a plain-text 500
    assert "no space left" in full.json()["detail"] and "Retry-After" in full.headers
    # a video too large to write: that job fails, with the cause; the worker goes on
    big = submit(server.url, height="256", width="256", frames="16", steps="2").json()["id"]
    failed = wait(server.url, big)
    assert (failed["status"], failed["cause"]) == ("failed", "storage"), failed
    assert "could not be written" in failed["error"]
    small = submit(server.url).json()["id"]
    assert wait(server.url, small)["status"] == "succeeded"
    assert httpx.get(f"{server.url}/readyz", timeout=10).status_code == 200
    # retention runs while the server runs (1.8 s here), not only at its start

    def gone() -> bool:
        return httpx.get(f"{server.url}/v1/jobs/{small}", timeout=10).status_code == 404

    until(gone, "the finished job's removal by retention", timeout=15)
    assert not (server.home / "server" / "outputs" / f"{small}.mp4").exists()


def test_stray_temp_inputs_and_orphans_are_removed_at_start(tmp_path):
    store = JobStore(tmp_path, 4)
    job = store.submit({"prompt": "x"}, png(), 1)
    stray = tmp_path / "inputs" / f".{job.id}.png.abc123.tmp"
    orphan = tmp_path / "inputs" / f"{'o' * 22}.png"
    stray.write_bytes(b"half an upload")
    orphan.write_bytes(png())
    store.close()
    JobStore(tmp_path, 4).recover("retry", 2)
    assert not stray.exists() and not orphan.exists()
    assert store.input_path(job.id).exists()  # a job's own input stays
