"""The job API on a real server process: submit, events, video, cancel, validation, safety."""

from __future__ import annotations

import io

import httpx
import pytest
from PIL import Image

from tests.helpers.api import events, png, submit, until, wait
from tests.helpers.video import read_mp4


def test_submit_stream_progress_and_fetch_the_mp4(server, tmp_path):
    response = submit(server.url, prompt="a red kite", frames="5", steps="4")
    assert response.status_code == 202, response.text
    job = response.json()
    assert len(job["id"]) == 22 and job["urls"]["events"].endswith("/events")
    seen = events(server.url, job["id"])
    steps = [e["progress"]["step"] for kind, e in seen
             if kind == "progress" and e.get("progress", {}).get("stage") == "denoise"]  # fmt: skip
    assert steps and steps == sorted(steps) and max(steps) <= 4
    kind, final = seen[-1]
    assert kind == "done" and final["status"] == "succeeded"
    assert final["result"]["frames"] == 5
    video = httpx.get(server.url + final["urls"]["video"], timeout=30)
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    (tmp_path / "v.mp4").write_bytes(video.content)
    assert read_mp4(tmp_path / "v.mp4").shape == (5, 64, 64, 3)
    # the server's console has a line as each job starts and as it ends
    # (the end line is written just after the job is stored as done, so it may lag the event)
    ended = f"job {job['id']} succeeded on worker-0 in "
    log = until(lambda: ended in (text := server.log.read_text()) and text, ended)
    assert f"job {job['id']} started on worker-0: 64x64, 5 frames, 4 steps" in log
    part = httpx.get(server.url + final["urls"]["video"], headers={"Range": "bytes=10-99"})
    assert part.status_code == 206 and len(part.content) == 90
    assert part.content == video.content[10:100]


def test_many_jobs_one_model_load(server):
    ids = [submit(server.url, seed=str(i)).json()["id"] for i in range(4)]
    assert all(wait(server.url, i)["status"] == "succeeded" for i in ids)
    info = httpx.get(f"{server.url}/v1/info").json()
    assert info["loads"] == 1 and info["state"] in ("READY", "BUSY")
    listed = [j["id"] for j in httpx.get(f"{server.url}/v1/jobs?limit=50").json()]
    assert set(ids) <= set(listed)


def test_cancel_a_running_job_at_its_next_step(server):
    job = submit(server.url, steps="150", frames="8").json()
    next(_until_running(server.url, job["id"]))
    cancelled = httpx.post(f"{server.url}/v1/jobs/{job['id']}/cancel").json()
    assert cancelled["status"] in ("running", "cancelled")
    final = wait(server.url, job["id"])
    assert final["status"] == "cancelled"
    assert httpx.get(f"{server.url}/v1/jobs/{job['id']}/video").status_code == 404


def _until_running(url, job_id):
    with httpx.stream("GET", f"{url}/v1/jobs/{job_id}/events", timeout=60) as response:
        for line in response.iter_lines():
            if '"stage": "denoise"' in line:
                yield "progress", line
                return


def test_cancel_a_queued_job_at_once(server):
    first = submit(server.url, steps="60").json()
    second = submit(server.url).json()
    response = httpx.post(f"{server.url}/v1/jobs/{second['id']}/cancel")
    assert response.status_code == 202 and response.json()["status"] == "cancelled"
    httpx.post(f"{server.url}/v1/jobs/{first['id']}/cancel")
    assert wait(server.url, first["id"])["status"] == "cancelled"


def test_an_injected_oom_fails_the_job_and_the_server_stays_ready(server):
    failed = wait(server.url, submit(server.url, height="128", width="128").json()["id"])
    assert failed["status"] == "failed" and failed["cause"] == "oom"
    assert "lower the resolution" in failed["error"]
    assert httpx.get(f"{server.url}/readyz").status_code == 200
    retried = wait(server.url, submit(server.url, height="192", width="192").json()["id"])
    assert retried["status"] == "succeeded" and retried["result"]["retried"] is True
    assert wait(server.url, submit(server.url).json()["id"])["status"] == "succeeded"
    metrics = httpx.get(f"{server.url}/metrics").text
    assert 'i2vkit_job_failures_total{cause="oom"} 1.0' in metrics


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("height", "100", "not a multiple of 64"),
        ("frames", "999", "frames=999 is out of range"),
        ("steps", "abc", "steps"),
        ("scheduler", "plms", "scheduler 'plms' is unknown"),
        ("preset", "ultra", "preset 'ultra' is unknown"),
    ],
)
def test_bad_settings_get_422_naming_the_value(server, field, value, message):
    response = submit(server.url, **{field: value})
    assert response.status_code == 422
    assert message in response.text


def test_a_job_that_would_not_fit_gets_422_with_settings_that_would(server):
    response = submit(server.url, height="1536", width="1536", frames="64", decode_chunk="64")
    assert response.status_code == 422
    body = response.json()
    assert "GiB is free" in body["detail"] and body["fits"]


def _encode(image: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kw)
    return buf.getvalue()


def test_awkward_images_are_accepted(server):
    exif = Image.new("RGB", (64, 32)).getexif()
    exif[0x0112] = 6
    for data in (
        _encode(Image.new("CMYK", (64, 64), (0, 255, 255, 0)), "JPEG"),
        _encode(Image.new("I;16", (64, 64)), "PNG"),
        _encode(Image.new("P", (64, 64)), "PNG"),
        _encode(Image.new("RGB", (64, 32)), "JPEG", exif=exif),
    ):
        response = submit(server.url, image=data)
        assert response.status_code == 202, response.text
        httpx.post(f"{server.url}/v1/jobs/{response.json()['id']}/cancel")


def test_bad_uploads_are_refused_with_the_reason(server):
    jpeg = _encode(Image.new("RGB", (64, 64)), "JPEG")
    bomb = _encode(Image.new("1", (7000, 7000)), "PNG")
    cases = [
        (b"%PDF-1.7", 422, "not an image"),
        (jpeg[: len(jpeg) // 2], 422, "truncated"),
        (bomb, 422, "MP"),
        (png() + b"\0" * (3 * 2**20), 413, "MiB"),
    ]
    for data, status, message in cases:
        response = submit(server.url, image=data)
        assert response.status_code == status, (message, response.text)
        assert message in response.text


def test_an_upload_over_the_limit_gets_its_413_even_when_many_arrive_at_once(server):
    # refused by its Content-Length before a byte is read; unread bytes at the close reset
    # the connection and the client lost the 413 (6 of 120 at 8 at once): they are drained
    from concurrent.futures import ThreadPoolExecutor

    def one(_: int) -> int | str:
        try:
            return submit(server.url, image=png() + b"\0" * (3 * 2**20)).status_code
        except httpx.HTTPError as error:
            return type(error).__name__

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(one, range(48)))
    assert answers == [413] * 48, answers


def test_ids_never_reach_the_filesystem(server):
    for bad in ("../../etc/passwd", "..%2F..%2Fjobs.db", "x" * 22, "a;b"):
        response = httpx.get(f"{server.url}/v1/jobs/{bad}/video")
        assert response.status_code == 404


def test_health_and_ready(server):
    assert httpx.get(f"{server.url}/healthz").json()["state"] in ("READY", "BUSY")
    assert httpx.get(f"{server.url}/readyz").status_code == 200
    assert "/v1/jobs" in httpx.get(f"{server.url}/openapi.json").json()["paths"]
    presets = httpx.get(f"{server.url}/v1/presets").json()
    assert {p["name"] for p in presets} >= {"preview", "entry"}
    assert all("fits" in p and "reason" in p for p in presets)
