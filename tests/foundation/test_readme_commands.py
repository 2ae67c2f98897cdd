"""README.md's "Run it" command, verbatim, on a fresh machine (tests/helpers/fresh.py): a copy of
the checkout, a new HOME, no tool but the system's and python3. It must set up the runtime layer
and the demo model and serve it; one job through the API must give an mp4 that decodes. Then
what the README says next: a second setup is "up to date", and `i2vkit generate` makes a video.

The test command is not run here (it runs this suite); .ci/run runs it the same way.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers import fresh, readme
from tests.helpers.video import read_mp4

PORT = 7860  # the command's own default: the README says to open http://127.0.0.1:7860
URL = f"http://127.0.0.1:{PORT}"


def _ready(proc: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the command stopped (exit {proc.returncode}):\n{log.read_text()[-6000:]}")
        try:
            if httpx.get(f"{URL}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    pytest.fail(f"not ready on {URL} within {timeout:g} s:\n{log.read_text()[-6000:]}")


def _one_job(clone: Path) -> bytes:
    picture = (clone / "docs" / "example.png").read_bytes()
    small = {"height": "64", "width": "64", "frames": "4", "steps": "3", "prompt": "a boat"}
    answer = httpx.post(f"{URL}/v1/jobs", data=small, timeout=60,
                        files={"image": ("example.png", picture, "image/png")})  # fmt: skip
    assert answer.status_code == 202, answer.text
    job_id = answer.json()["id"]
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        job = httpx.get(f"{URL}/v1/jobs/{job_id}", timeout=10).json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(0.5)
    assert job["status"] == "succeeded", job
    return httpx.get(f"{URL}/v1/jobs/{job_id}/video", timeout=60).content


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_the_run_command_serves_a_video_on_a_fresh_machine(tmp_path):
    with httpx.Client() as probe:  # the command serves on its default port: it must be free
        try:
            probe.get(f"{URL}/healthz", timeout=1)
            pytest.fail(f"something already answers on {URL}; stop it and run again")
        except httpx.ConnectError:
            pass
    clone = fresh.copy_checkout(tmp_path / "i2vkit")
    env = fresh.environment(tmp_path / "home")
    log = tmp_path / "run.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["bash", "-c", readme.command("run")], cwd=clone, env=env, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        _ready(proc, log, timeout=1800)
        video = _one_job(clone)
    finally:
        fresh.stop_session(proc, str(tmp_path))
    (tmp_path / "job.mp4").write_bytes(video)
    assert read_mp4(tmp_path / "job.mp4").shape == (4, 64, 64, 3)

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*args], cwd=clone, env={**env, "COLUMNS": "200"},
                              capture_output=True, text=True, timeout=600)  # fmt: skip

    light = run(".venv/bin/python", "-c", "import torch")
    assert light.returncode != 0  # the toolkit's venv stays light: the runtime lives in the env
    again = run(".venv/bin/i2vkit", "setup", "--model", "demo")
    assert again.returncode == 0 and "up to date" in again.stdout, again.stdout + again.stderr
    made = run(".venv/bin/i2vkit", "generate", "--model", "demo", "--image", "docs/example.png",
               "--out", "demo.mp4", "--frames", "4", "--steps", "3")  # fmt: skip
    assert made.returncode == 0, made.stdout[-3000:] + made.stderr[-3000:]
    assert read_mp4(clone / "demo.mp4").shape[0] == 4
