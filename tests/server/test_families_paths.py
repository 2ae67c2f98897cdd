"""The LTX-Video, LTX-2 and HunyuanVideo 1.5 tiny twins through `invoke serve` as a user meets
them: a job's progress events and its mp4 at the model's size and frame rate, refusals that name
a value that works, cancel at the next step, the same seed twice, and the web page in Debian's
chromium. One real server process per family."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from i2vkit import catalogue, request
from tests.helpers.api import events, submit, wait
from tests.helpers.browser import chromium, until_true
from tests.helpers.invoke import ROOT
from tests.helpers.server import Server, model_server
from tests.helpers.video import frame_rate, read_mp4

# A job each twin takes, and a setting each refuses with the value it would take
JOBS = {
    "ltx-demo": {"height": "64", "width": "96", "frames": "9", "steps": "3"},
    "ltx2-demo": {"height": "64", "width": "96", "frames": "9", "steps": "3"},
    "hunyuan-demo": {"height": "64", "width": "80", "frames": "5", "steps": "3"},
}
REFUSED = {
    "ltx-demo": ("frames", "12", "frames=12 does not fit ltx-demo (frames = 8k+1", "9"),
    "ltx2-demo": ("height", "80", "height=80 is not a multiple of 32; try height=64", "64"),
    "hunyuan-demo": ("width", "88", "width=88 is not a multiple of 16; try width=96", "96"),
}


@pytest.fixture(scope="module", params=list(JOBS))
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[tuple[str, Server]]:  # fmt: skip
    from i2vkit.runtime import twins

    model = request.param
    home = tmp_path_factory.mktemp(f"serve-{model}")
    entry = catalogue.model(model)
    twins.save(home / "models" / model, entry.family, twin=entry.twin)
    server = model_server(home, model, "--queue-size", "8").start()
    yield model, server
    server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with chromium() as launched:
        yield launched


DONE = "document.querySelector('#bar').getAttribute('aria-valuenow') === '100'"


def _submit(model: str, url: str, **fields: str) -> httpx.Response:
    return submit(url, None, None, **{**JOBS[model], **fields})


def _denoise(seen: list[tuple[str, dict]]) -> list[int]:
    return [e["progress"]["step"] for kind, e in seen
            if kind == "progress" and e.get("progress", {}).get("stage") == "denoise"]  # fmt: skip


def _fetch_mp4(url: str, job: dict, path: Path) -> Path:
    video = httpx.get(url + job["urls"]["video"], timeout=30)
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    path.write_bytes(video.content)
    return path


def test_a_job_streams_its_steps_and_serves_the_mp4_at_the_model_s_rate(served, tmp_path):
    model, server = served
    response = _submit(model, server.url, prompt="a paper boat drifts", seed="7")
    assert response.status_code == 202, response.text
    job = response.json()
    seen = events(server.url, job["id"])
    steps = _denoise(seen)
    assert steps == sorted(steps) and steps[-1] == 3
    kind, final = seen[-1]
    assert kind == "done" and final["status"] == "succeeded", final
    assert final["result"]["options"]["memory"] == "full"
    size = JOBS[model]
    mp4 = _fetch_mp4(server.url, final, tmp_path / "a.mp4")
    shape = (int(size["frames"]), int(size["height"]), int(size["width"]), 3)
    assert read_mp4(mp4).shape == shape
    assert frame_rate(mp4) == catalogue.model(model).fps == 24
    # the same seed again: the same frames (their digest; x264 may encode them differently)
    again = wait(server.url, _submit(model, server.url, prompt="a paper boat drifts",
                                     seed="7").json()["id"])  # fmt: skip
    assert again["status"] == "succeeded"
    assert again["result"]["frames_sha256"] == final["result"]["frames_sha256"]
    other = wait(server.url, _submit(model, server.url, prompt="a paper boat drifts",
                                     seed="8").json()["id"])  # fmt: skip
    assert other["result"]["frames_sha256"] != final["result"]["frames_sha256"]


def test_a_setting_the_model_cannot_take_gets_422_naming_one_it_can(served):
    model, server = served
    field, bad, message, good = REFUSED[model]
    refused = _submit(model, server.url, **{field: bad})
    assert refused.status_code == 422 and message in refused.json()["detail"]
    assert f"try {field}={good}" in refused.json()["detail"]
    accepted = _submit(model, server.url, **{field: good, "steps": "2"})
    assert accepted.status_code == 202, accepted.text
    assert wait(server.url, accepted.json()["id"])["status"] == "succeeded"


def test_cancelling_a_running_job_stops_it_at_the_next_step(served):
    model, server = served
    total = 150
    job = _submit(model, server.url, steps=str(total)).json()
    steps: list[int] = []
    cancelled_at = None
    with httpx.stream("GET", f"{server.url}/v1/jobs/{job['id']}/events", timeout=120) as stream:
        for line in stream.iter_lines():
            match = re.search(r'"stage": "denoise", "step": (\d+)', line)
            if match:
                steps.append(int(match[1]))
                if cancelled_at is None:
                    answer = httpx.post(f"{server.url}/v1/jobs/{job['id']}/cancel").json()
                    cancelled_at = answer.get("progress", {}).get("step", steps[-1])
            if line.startswith("event: done"):
                break
    final = wait(server.url, job["id"])
    assert final["status"] == "cancelled" and final["error"] == "cancelled while running"
    # the step the cancel saw may lag the worker's by one (its progress still in the pipe):
    # the worker stops at the next step's end
    assert cancelled_at is not None and steps[-1] <= cancelled_at + 2 < total, steps
    assert httpx.get(f"{server.url}/v1/jobs/{job['id']}/video").status_code == 404
    assert wait(server.url, _submit(model, server.url).json()["id"])["status"] == "succeeded"


def test_the_page_makes_a_video_from_the_model_s_preset(served, browser, tmp_path):
    model, server = served
    page = browser.new_page(viewport={"width": 1100, "height": 800})
    page.goto(server.url)
    page.wait_for_selector("#preset option", state="attached")
    offered = page.eval_on_selector_all("#scheduler option", "els => els.map(e => e.value)")
    assert [v for v in offered if v] == ["euler"]
    page.set_input_files("#file", str(ROOT / "docs" / "example.png"))
    page.fill("#prompt", "waves roll onto the beach")
    page.click("#submit")
    until_true(
        page, "document.querySelector('#bar').getAttribute('aria-valuenow') === '100'", timeout=180
    )
    until_true(page, "document.querySelector('#download').getAttribute('href')", timeout=60)
    job_id = page.get_attribute("#download", "href").split("/")[-2]
    page.close()
    job = httpx.get(f"{server.url}/v1/jobs/{job_id}").json()
    preview = request.make(model, "preview")
    assert job["status"] == "succeeded"
    mp4 = _fetch_mp4(server.url, job, tmp_path / "page.mp4")
    assert read_mp4(mp4).shape == (preview.frames, preview.height, preview.width, 3)


def test_serve_refuses_an_acceleration_the_model_cannot_take(tmp_path):
    """--cache on HunyuanVideo 1.5 (its blocks are not registered with diffusers' cache hooks):
    refused with exit 2 before the server starts, naming the fix."""
    from tests.helpers.invoke import run_invoke

    home = tmp_path / "home"
    shutil.rmtree(home, ignore_errors=True)
    done = run_invoke("serve", "--model", "hunyuan-demo", "--cache", "fbcache", "--port", "0",
                      env={"I2VKIT_HOME": str(home)})  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert "--cache fbcache does not apply to hunyuan-demo" in done.stderr
    assert "use --cache none" in done.stderr
