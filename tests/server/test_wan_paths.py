"""The Wan tiny twins through `invoke serve` as a user meets them: the job API (submit, progress
events, the mp4 at the model's size and frame rate, what the job ran with), refusals that name
a value that works, cancel, the presets, and the web page in Debian's chromium. One real server
process serves `wan-demo` for most tests; the two-expert twin gets one of its own."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from i2vkit import catalogue, request
from tests.helpers.api import events, png, submit, wait
from tests.helpers.browser import chromium, until_true
from tests.helpers.invoke import ROOT
from tests.helpers.server import Server, model_server
from tests.helpers.video import frame_rate, read_mp4

TWINS = ("wan-demo", "wan-demo-a14b")  # the 2.1 I2V twin: tests/runtime/test_wan_paths.py
# 96 is a multiple of wan-demo's 32 but not of 64 (the UNet families'); 5 frames = 4k+1
WAN = {"height": "64", "width": "96", "frames": "5", "steps": "3"}


@pytest.fixture(scope="module")
def wan_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from i2vkit.runtime import twins

    home = tmp_path_factory.mktemp("wan-home")
    for name in TWINS:
        model = catalogue.model(name)
        twins.save(home / "models" / name, model.family, twin=model.twin)
    return home


DONE = "document.querySelector('#bar').getAttribute('aria-valuenow') === '100'"


def _serve(tmp_path_factory: pytest.TempPathFactory, wan_home: Path, model: str,
           *args: str) -> Server:  # fmt: skip
    home = tmp_path_factory.mktemp(f"serve-{model}")
    shutil.copytree(wan_home, home, dirs_exist_ok=True)
    return model_server(home, model, *args).start()


@pytest.fixture(scope="module")
def wan(tmp_path_factory: pytest.TempPathFactory, wan_home: Path) -> Iterator[Server]:
    """One `invoke serve --model wan-demo` for the tests that submit, read and cancel."""
    server = _serve(tmp_path_factory, wan_home, "wan-demo", "--queue-size", "8")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with chromium() as launched:
        yield launched


def _submit(url: str, image: bytes | None = None, **fields: str) -> httpx.Response:
    """A job at the WAN settings unless `fields` say otherwise (the API helper's own defaults
    are the demo model's, whose 4 frames Wan refuses)."""
    return submit(url, image, None, **{**WAN, **fields})


def _fetch_mp4(url: str, job: dict, path: Path) -> Path:
    video = httpx.get(url + job["urls"]["video"], timeout=30)
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    path.write_bytes(video.content)
    return path


def _denoise(seen: list[tuple[str, dict]]) -> list[tuple[int, int]]:
    return [(e["progress"]["step"], e["progress"]["total"]) for kind, e in seen
            if kind == "progress" and e.get("progress", {}).get("stage") == "denoise"]  # fmt: skip


# --- the job API ------------------------------------------------------------------------------


def test_a_wan_job_streams_its_steps_and_serves_the_mp4_at_24_fps(wan, tmp_path):
    info = httpx.get(f"{wan.url}/v1/info").json()
    assert info["model"] == "wan-demo" and info["dtype"] == "fp32" and info["loads"] == 1

    response = _submit(wan.url, prompt="a paper boat drifts")
    assert response.status_code == 202, response.text
    job = response.json()
    assert {k: job["settings"][k] for k in ("height", "width", "frames", "steps", "fps")} == {
        "height": 64, "width": 96, "frames": 5, "steps": 3, "fps": 24,
    }  # fmt: skip
    seen = events(wan.url, job["id"])
    denoise = _denoise(seen)
    assert denoise and {total for _, total in denoise} == {3}
    steps = [step for step, _ in denoise]
    assert steps == sorted(steps) and steps[-1] == 3  # progress reaches the denoise total
    kind, final = seen[-1]
    assert kind == "done" and final["status"] == "succeeded", final
    result = final["result"]
    assert result["frames"] == 5 and result["device"] == "cpu" and result["dtype"] == "fp32"
    # what the job ran with: the planner's strategy on the CPU (everything fits) and the dtype
    assert result["options"]["memory"] == "full" and result["options"]["dtype"] == "fp32"

    mp4 = _fetch_mp4(wan.url, final, tmp_path / "wan.mp4")
    assert read_mp4(mp4).shape == (5, 64, 96, 3)
    assert frame_rate(mp4) == 24  # the model's own rate, not the demo's 8


@pytest.mark.parametrize(
    ("field", "bad", "message", "good"),
    [
        ("height", "100", "height=100 is not a multiple of 32; try height=96", "96"),
        # a multiple of 16 (enough for the 2.1 and A14B twins), not of wan-demo's 32
        ("width", "80", "width=80 is not a multiple of 32; try width=64", "64"),
        ("frames", "8", "frames=8 does not fit wan-demo (frames = 4k+1", "9"),
        ("frames", "6", "; try frames=5", "5"),
        ("scheduler", "ddim", "scheduler 'ddim' is unknown for wan-demo; known: unipc, euler",
         "euler"),
    ],
)  # fmt: skip
def test_a_setting_wan_cannot_take_gets_422_naming_one_that_it_can(wan, field, bad, message,
                                                                    good):  # fmt: skip
    refused = _submit(wan.url, **{field: bad})
    assert refused.status_code == 422, refused.text
    detail = refused.json()["detail"]
    assert message in detail
    assert f"try {field}={good}" in detail or f"known: unipc, {good}" in detail
    accepted = _submit(wan.url, **{"steps": "2", field: good})  # the advice works
    assert accepted.status_code == 202, accepted.text
    assert wait(wan.url, accepted.json()["id"])["status"] == "succeeded"


def test_cancelling_a_running_wan_job_stops_it_at_the_next_step(wan, tmp_path):
    total = 150
    job = _submit(wan.url, height="128", width="128", frames="9", steps=str(total)).json()
    steps: list[int] = []
    cancelled_at = None
    with httpx.stream("GET", f"{wan.url}/v1/jobs/{job['id']}/events", timeout=120) as stream:
        for line in stream.iter_lines():
            match = re.search(r'"stage": "denoise", "step": (\d+)', line)
            if match:
                steps.append(int(match[1]))
                if cancelled_at is None:
                    answer = httpx.post(f"{wan.url}/v1/jobs/{job['id']}/cancel").json()
                    assert answer["status"] in ("running", "cancelled")
                    cancelled_at = answer.get("progress", {}).get("step", steps[-1])
            if line.startswith("event: done"):
                break
    final = wait(wan.url, job["id"])
    assert final["status"] == "cancelled" and final["error"] == "cancelled while running"
    # the step the cancel saw may lag the worker's by one (its progress still in the pipe):
    # the worker stops at the next step's end
    assert cancelled_at is not None and steps[-1] <= cancelled_at + 2 < total, steps
    assert httpx.get(f"{wan.url}/v1/jobs/{job['id']}/video").status_code == 404
    assert not (wan.home / "server" / "outputs" / f"{job['id']}.mp4").exists()
    after = wait(wan.url, _submit(wan.url).json()["id"])  # the worker goes on
    assert after["status"] == "succeeded"


def test_v1_presets_give_the_wan_model_s_own_numbers(wan):
    """The numbers a preset runs with for this model (models.toml's presets.*), not the generic
    table's: wan-demo's preview is 128x128, 9 frames, 10 steps; the generic 8 frames are not
    even a frame count Wan can make."""
    listed = httpx.get(f"{wan.url}/v1/presets").json()
    shown = {p["name"]: (p["height"], p["width"], p["frames"], p["steps"]) for p in listed}
    runs = {name: request.make("wan-demo", name) for name in shown}
    assert shown == {n: (s.height, s.width, s.frames, s.steps) for n, s in runs.items()}
    # and the memory strategy each runs with, with the planner's estimate of its peak
    assert {p["strategy"] for p in listed} == {"full"}
    assert all(p["estimate_gib"] > 0 for p in listed if p["fits"])


# --- the web page -----------------------------------------------------------------------------


def _open(browser, url: str):
    page = browser.new_page(viewport={"width": 1100, "height": 800})
    page.goto(url)
    page.wait_for_selector("#preset option", state="attached")
    return page


def _wait_done(page) -> None:
    try:  # the 81-frame job too, on a busy 2-core machine
        until_true(
            page,
            "document.querySelector('#bar').getAttribute('aria-valuenow') === '100'",
            timeout=180,
        )
    except TimeoutError:
        pytest.fail(f"the bar did not reach 100%; the page says: {page.inner_text('#status')!r}")


def _page_job(url: str, page) -> dict:
    job_id = page.get_attribute("#download", "href").split("/")[-2]
    return httpx.get(f"{url}/v1/jobs/{job_id}").json()


def test_the_page_makes_a_wan_video_from_the_model_s_preset(wan, browser, tmp_path):
    page = _open(browser, wan.url)
    page.set_input_files("#file", str(ROOT / "docs" / "example.png"))
    page.fill("#prompt", "waves roll onto the beach")
    page.click("#submit")
    _wait_done(page)
    until_true(page, "document.querySelector('#video').readyState >= 2", timeout=30)
    until_true(page, "document.querySelector('#video').currentTime > 0", timeout=30)
    assert "done in" in page.inner_text("#status") and "9 frames" in page.inner_text("#status")
    page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
    job = _page_job(wan.url, page)
    page.close()
    preview = request.make("wan-demo", "preview")  # the preset alone: the model's own numbers
    assert job["settings"]["prompt"] == "waves roll onto the beach"
    assert (job["settings"]["height"], job["settings"]["frames"]) == (preview.height, 9)
    mp4 = _fetch_mp4(wan.url, job, tmp_path / "page.mp4")
    assert read_mp4(mp4).shape == (9, preview.height, preview.width, 3)
    assert frame_rate(mp4) == 24


def test_the_page_lists_the_wan_presets_at_the_model_s_own_numbers(wan, browser):
    page = _open(browser, wan.url)
    labels = page.eval_on_selector_all("#preset option", "els => els.map(e => e.textContent)")
    page.close()
    made = [request.make("wan-demo", p.name) for p in catalogue.presets()]
    expected = [f"{p.name}: {s.height}x{s.width}, {s.frames} frames, {s.steps} steps, memory full"
                for p, s in zip(catalogue.presets(), made, strict=True)]  # fmt: skip
    assert [label.split(" (~")[0] for label in labels] == expected  # then the estimate in GiB


def test_the_page_takes_the_sizes_and_frame_counts_wan_takes(wan, browser, tmp_path):
    """96 (a multiple of wan-demo's 32) and 81 frames (Wan 2.1's default; Wan 2.2 TI2V's is
    121) are what the server accepts; the browser must let the form through."""
    page = _open(browser, wan.url)
    page.set_input_files("#file", str(ROOT / "docs" / "example.png"))
    page.click("summary")
    wanted = {"height": "96", "width": "96", "frames": "81", "steps": "2"}
    for name, value in wanted.items():
        page.fill(f"#{name}", value)
    refused = {name: page.eval_on_selector(f"#{name}", "e => e.validationMessage")
               for name in wanted}  # fmt: skip
    assert {k: v for k, v in refused.items() if v} == {}, "the browser refuses the form"
    page.click("#submit")
    _wait_done(page)
    job = _page_job(wan.url, page)
    page.close()
    mp4 = _fetch_mp4(wan.url, job, tmp_path / "page-81.mp4")
    assert read_mp4(mp4).shape == (81, 96, 96, 3)


def test_the_page_offers_the_wan_model_s_schedulers(wan, browser):
    page = _open(browser, wan.url)
    offered = page.eval_on_selector_all("#scheduler option", "els => els.map(e => e.value)")
    page.close()
    assert [v for v in offered if v] == list(catalogue.model("wan-demo").schedulers)


# --- the two-expert twin ---------------------------------------------------------------------


def test_the_a14b_twin_serves_in_fp8_and_bf16_its_mp4_at_16_fps(tmp_path_factory, wan_home,
                                                                tmp_path):  # fmt: skip
    """The planner's fp8 storage strategy for the two experts, asked for by name, in bf16;
    the 2.1 I2V twin's paths (its CLIP image encoder) are `invoke generate`'s test's."""
    flags = ("--memory", "fp8", "--dtype", "bf16")
    server = _serve(tmp_path_factory, wan_home, "wan-demo-a14b", *flags)
    try:
        assert httpx.get(f"{server.url}/v1/info").json()["dtype"] == "bf16"
        # 80 is a multiple of this twin's 16 (not of wan-demo's 32)
        response = _submit(server.url, png(128, 96), width="80", steps="4")
        assert response.status_code == 202, response.text
        seen = events(server.url, response.json()["id"])
        assert _denoise(seen)[-1] == (4, 4)
        kind, final = seen[-1]
        assert kind == "done" and final["status"] == "succeeded", final
        options = final["result"]["options"]
        assert (options["memory"], options["dtype"]) == ("fp8", "bf16")
        mp4 = _fetch_mp4(server.url, final, tmp_path / "a14b.mp4")
        assert read_mp4(mp4).shape == (5, 64, 80, 3)
        assert frame_rate(mp4) == 16
        refused = _submit(server.url, height="72", frames="7")
        assert refused.status_code == 422
        assert "height=72 is not a multiple of 16; try height=64" in refused.json()["detail"]
        assert "try frames=9" in refused.json()["detail"]
    finally:
        server.stop()
