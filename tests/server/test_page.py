"""The web page in headless Chromium (Debian's chromium, driven by Playwright's client): upload,
submit, watch the bar reach 100%, the video plays; the header, the filled-in settings, random
seeds, the live job list with thumbnails, reuse, the API snippets; all under the page's
Content-Security-Policy, with no violation reported. The screenshot is kept with the test's
temporary files (pytest prints where when it fails)."""

from __future__ import annotations

import io
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from PIL import Image
from playwright.sync_api import expect

from i2vkit.runtime.server.page import thumbnail
from tests.helpers.api import running, submit
from tests.helpers.browser import chromium, until_true
from tests.helpers.invoke import ROOT

EXAMPLE = str(ROOT / "docs" / "example.png")
# every CSP violation the page meets, as the browser reports it to the page itself
WATCH_CSP = """
window.__csp = [];
document.addEventListener("securitypolicyviolation",
    (e) => window.__csp.push(`${e.violatedDirective} blocked ${e.blockedURI}`));
"""


@dataclass
class Tab:
    page: Any
    problems: list[str] = field(default_factory=list)

    def assert_clean(self) -> None:
        """No CSP violation (event or console message) and no script error on the page."""
        seen = self.problems + self.page.evaluate("window.__csp")
        assert seen == [], seen


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


@pytest.fixture
def tab(browser) -> Iterator[Tab]:
    context = browser.new_context(viewport={"width": 1100, "height": 800})
    page = context.new_page()
    tab = Tab(page)
    page.add_init_script(WATCH_CSP)
    page.on("console", lambda m: tab.problems.append(m.text)
            if "Content Security Policy" in m.text else None)  # fmt: skip
    page.on("pageerror", lambda error: tab.problems.append(f"script error: {error}"))
    yield tab
    context.close()


def _open(tab: Tab, url: str) -> Any:
    response = tab.page.goto(url)
    assert "script-src 'self'" in response.headers["content-security-policy"]
    tab.page.wait_for_selector("#preset option", state="attached")
    return tab.page


def _wait_done(page: Any) -> None:
    try:
        expect(page.locator("#bar")).to_have_attribute("aria-valuenow", "100", timeout=120_000)
    except AssertionError:
        pytest.fail(f"the bar did not reach 100%; the page says: {page.inner_text('#status')}")


def test_the_page_makes_a_video_end_to_end(server, tab, tmp_path):
    page = _open(tab, server.url)
    page.set_input_files("#file", EXAMPLE)
    page.fill("#prompt", "a boat sails at sunset")
    page.click("summary")
    # not 128 or 192: the shared server's fault hook makes those sizes run out of memory
    for name, value in {"height": "256", "width": "256", "frames": "6", "steps": "12"}.items():
        page.fill(f"#{name}", value)
    page.click("#submit")
    _wait_done(page)
    until_true(page, "document.querySelector('#video').readyState >= 2")
    until_true(page, "document.querySelector('#video').currentTime > 0")
    assert "done in" in page.inner_text("#status")
    href = page.get_attribute("#download", "href")
    assert href.endswith("/video")
    job = httpx.get(server.url + href.removesuffix("/video")).json()
    assert f"seed {job['settings']['seed']}" in page.inner_text("#job-info")
    page.wait_for_selector("#jobs li .succeeded")
    page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
    tab.assert_clean()
    assert (tmp_path / "page.png").stat().st_size > 10_000


def test_the_page_says_why_a_preset_does_not_fit(server, tab):
    page = _open(tab, server.url)
    options = page.eval_on_selector_all(
        "#preset option", "els => els.map(e => [e.value, e.disabled, e.title])"
    )
    assert [o[0] for o in options] == ["preview", "entry", "mainstream", "pro"]
    for _value, disabled, reason in options:
        assert not disabled or "GiB is free" in reason
    tab.assert_clean()


def test_the_page_names_the_model_and_fills_in_the_preset(server, tab):
    info = httpx.get(f"{server.url}/v1/info").json()
    preset = next(p for p in httpx.get(f"{server.url}/v1/presets").json() if p["default"])
    page = _open(tab, server.url)
    expect(page.locator("#model")).to_have_text("demo")
    assert "cpu" in page.inner_text("#devices")
    assert info["random_weights"] is True  # the demo model's are: its videos are noise
    expect(page.locator("#notice")).to_contain_text("random weights: its output is noise")
    filled = {name: page.input_value(f"#{name}") for name in ("height", "width", "frames", "steps")}
    assert filled == {name: str(preset[name]) for name in filled}
    assert float(page.input_value("#guidance")) == info["settings"]["guidance"]
    assert int(page.input_value("#fps")) == info["settings"]["fps"]
    page.click("summary")
    page.fill("#height", "512")
    page.dispatch_event("#preset", "change")  # choosing the preset again refills its values
    assert page.input_value("#height") == str(preset["height"])
    tab.assert_clean()


def _submit_in_page(page: Any, prompt: str, meanwhile: Any = None) -> str:
    """Submit the form (then call `meanwhile`); the seed the page shows for the job once it
    is done."""
    before = page.inner_text("#job-info")
    page.fill("#prompt", prompt)
    page.click("#submit")
    expect(page.locator("#job-info")).not_to_have_text(before, timeout=30_000)  # the new job
    if meanwhile:
        meanwhile()
    expect(page.locator("#status")).to_contain_text("done in", timeout=120_000)
    return page.inner_text("#job-info").split("seed ")[1].split(" ")[0]


def test_random_seeds_the_live_job_list_reuse_and_the_api_snippets(server, tab):
    page = _open(tab, server.url)
    page.set_input_files("#file", EXAMPLE)
    page.click("summary")
    for name, value in {"height": "64", "width": "64", "frames": "4", "steps": "2"}.items():
        page.fill(f"#{name}", value)
    assert page.is_checked("#random-seed")
    # a job ahead of the first: the page says where in the queue it waits
    blocker = submit(server.url, steps="150", frames="32").json()  # cancelled once seen
    running(server.url, blocker["id"], step=1)

    def queued() -> None:
        place = re.compile(r"queued: position \d+ in the queue")
        expect(page.locator("#status")).to_contain_text(place)
        httpx.post(f"{server.url}/v1/jobs/{blocker['id']}/cancel")

    first = _submit_in_page(page, "the first boat", queued)
    second = _submit_in_page(page, "the second boat")
    assert first != second, "random seeds on: each submit gets its own"
    jobs = {j["settings"]["prompt"]: j for j in httpx.get(f"{server.url}/v1/jobs").json()}
    assert str(jobs["the first boat"]["settings"]["seed"]) == first
    assert str(jobs["the second boat"]["settings"]["seed"]) == second
    assert f"seed {first}" in page.inner_text("#jobs")
    # the presets' time estimates, learnt from the jobs done, without a reload
    preview = page.locator("#preset option[value='preview']")
    expect(preview).to_contain_text(re.compile(r", ~\d+ (s|min)$"))

    # a job from elsewhere shows up without a reload, its picture as a thumbnail
    other = submit(server.url, _jpeg(700, 400), prompt="from the API").json()
    row = page.locator("#jobs li", has_text="from the API")
    row.wait_for(timeout=10_000)
    row.locator(".succeeded").wait_for(timeout=60_000)  # its status updates in place too
    # every thumbnail loads (the newest may still be on its way when the row turns green)
    loaded = until_true(
        page,
        "(() => { const s = [...document.querySelectorAll('#jobs li img.thumb')]"
        ".map(e => e.complete && e.naturalWidth > 0);"
        " return s.length >= 3 && s.every(Boolean); })()",
    )
    assert loaded
    thumb = httpx.get(f"{server.url}/v1/jobs/{other['id']}/input")
    assert thumb.headers["content-type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(thumb.content)).size) <= 320

    # reuse: the first job's settings back in the form, its seed kept
    page.locator("#jobs li", has_text="the first boat").locator("button.reuse").click()
    assert page.input_value("#prompt") == "the first boat"
    assert page.input_value("#seed") == first and not page.is_checked("#random-seed")
    assert [page.input_value(f"#{n}") for n in ("height", "width", "frames", "steps")] == [
        "64", "64", "4", "2"
    ]  # fmt: skip

    page.click("#api summary")
    curl = page.inner_text("#api-curl")
    assert curl.startswith(f"curl -X POST '{server.url}/v1/jobs'") and "Authorization" not in curl
    assert "scheduler" not in curl  # the model's default, as the job had it
    openai = page.inner_text("#api-openai")
    assert f'base_url="{server.url}/v1"' in openai
    tab.assert_clean()

    # each snippet, as a user would paste it, makes the same job again
    again = [_curl(curl), _openai(openai)]
    for job_id in again:
        s = httpx.get(f"{server.url}/v1/jobs/{job_id}").json()["settings"]
        assert s == {**jobs["the first boat"]["settings"], "frames": s["frames"]}, job_id
        assert s["frames"] == 4, "the OpenAI API's seconds is frames at the model's fps"


def test_a_job_deleted_elsewhere_while_the_page_watches_it_says_so(server, tab):
    page = _open(tab, server.url)
    blocker = submit(server.url, steps="150", frames="32").json()["id"]
    running(server.url, blocker, step=1)
    page.set_input_files("#file", EXAMPLE)
    page.fill("#prompt", "to be deleted")
    page.click("#submit")
    expect(page.locator("#status")).to_contain_text("queued")
    (job,) = [j for j in httpx.get(f"{server.url}/v1/jobs").json()
              if j["settings"]["prompt"] == "to be deleted"]  # fmt: skip
    assert httpx.delete(f"{server.url}/v1/videos/{job['id']}").status_code == 200
    expect(page.locator("#status")).to_have_text("this job was deleted")
    httpx.post(f"{server.url}/v1/jobs/{blocker}/cancel")
    expect(page.locator("#jobs li", has_text="to be deleted")).to_have_count(0)
    tab.assert_clean()


def test_the_static_files_and_thumbnails_are_served_as_they_should_be(server):
    script = httpx.get(f"{server.url}/static/app.js")
    assert script.headers["content-type"].startswith("text/javascript")
    assert httpx.get(f"{server.url}/static/app.css").headers["content-type"].startswith("text/css")
    again = httpx.get(
        f"{server.url}/static/app.js", headers={"If-None-Match": script.headers["etag"]}
    )
    assert again.status_code == 304
    for name in ("index.html", "..%2Fpage.py", "nothing.js"):
        assert httpx.get(f"{server.url}/static/{name}").status_code == 404
    assert httpx.get(f"{server.url}/v1/jobs/{'A' * 22}/input").status_code == 404


def _curl(command: str) -> str:
    """Read the curl command as the shell would, send its form with httpx: the job's id."""
    words = shlex.split(command.replace("\\\n", " "))
    fields = [
        words[i + 1].split("=", 1) for i, w in enumerate(words) if w in ("-F", "--form-string")
    ]
    data = {name: value for name, value in fields if not value.startswith("@")}
    picture = next(value[1:] for name, value in fields if name == "image")
    files = {"image": (picture, (ROOT / "docs" / picture).read_bytes())}
    response = httpx.post(words[words.index("POST") + 1], data=data, files=files, timeout=30)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def _openai(code: str) -> str:
    """Run the Python snippet where its picture is: the video's id (the job's)."""
    ran = subprocess.run([sys.executable, "-W", "ignore::DeprecationWarning", "-c", code],
                         cwd=ROOT / "docs", capture_output=True, text=True, timeout=60)  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    video_id, status = ran.stdout.split()
    assert status in ("queued", "in_progress")  # an idle worker may claim it before the 202
    return video_id


def _jpeg(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (30, 90, 200)).save(out, "JPEG")
    return out.getvalue()


def test_a_thumbnail_is_a_small_jpeg_of_the_stored_picture(tmp_path):
    """What the store keeps (a PNG, maybe with transparency, or the upload's own bytes)."""
    png = tmp_path / "in.png"
    Image.new("RGBA", (1000, 600), (0, 0, 0, 0)).save(png)
    small = Image.open(io.BytesIO(thumbnail(png)))
    assert (small.format, small.mode, small.size) == ("JPEG", "RGB", (320, 192))
    assert small.getpixel((10, 10)) > (240, 240, 240)  # see-through is white, not black
    tall = tmp_path / "upload"
    tall.write_bytes(_jpeg(600, 1000))
    assert Image.open(io.BytesIO(thumbnail(tall))).size == (192, 320)
    little = tmp_path / "little.png"
    Image.new("RGB", (64, 48)).save(little)
    assert Image.open(io.BytesIO(thumbnail(little))).size == (64, 48)  # never enlarged
