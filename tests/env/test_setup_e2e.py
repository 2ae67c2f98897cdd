"""The whole path as the README's main command runs it: a real setup of the runtime layer (CPU
torch, diffusers, the hash-locked pip layer) and the demo model, then a video made from a light
interpreter (no torch) whose `invoke generate` re-runs itself inside the env setup built.
Uses the host's mirrors: PyPI, and for torch the host pip's wheelhouse when
download.pytorch.org is not reachable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from i2vkit.tools import uv
from runtime.video import read_mp4
from tests.conftest import ROOT


@pytest.mark.slow
def test_setup_then_generate_from_a_light_interpreter(tmp_path):
    cache = os.environ.get("UV_CACHE_DIR") or str(Path.home() / ".cache" / "i2vkit-test-uv")
    env = {**os.environ, "I2VKIT_HOME": str(tmp_path / "home"), "COLUMNS": "200",
           "UV_CACHE_DIR": cache}  # fmt: skip
    setup = [sys.executable, "-m", "invoke", "setup", "--model", "demo", "--cuda", "cpu"]
    done = subprocess.run(setup, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "env ready" in done.stdout
    again = subprocess.run(setup, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert "up to date" in again.stdout

    light = tmp_path / "light"
    subprocess.run([uv(), "venv", "-q", "--python", sys.executable, str(light)], check=True)
    subprocess.run([uv(), "pip", "install", "-q", "--python", str(light / "bin" / "python"),
                    str(ROOT)], check=True, env=env, timeout=600)  # fmt: skip
    has_torch = subprocess.run([light / "bin" / "python", "-c", "import torch"],
                               capture_output=True)  # fmt: skip
    assert has_torch.returncode != 0  # the light layer really is light

    out = tmp_path / "demo.mp4"
    run = subprocess.run(
        [light / "bin" / "python", "-m", "invoke", "generate", "--model", "demo", "--image",
         str(ROOT / "docs" / "example.png"), "--height", "64", "--width", "64", "--frames", "4",
         "--steps", "3", "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    assert read_mp4(out).shape == (4, 64, 64, 3)
