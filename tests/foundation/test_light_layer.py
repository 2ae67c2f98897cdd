"""The light layer never imports torch: doctor and setup run before torch is installed."""

from __future__ import annotations

import subprocess
import sys
import venv

import pytest

from tests.conftest import ROOT

LIGHT_MODULES = [
    "tasks",
    "i2vkit.settings",
    "i2vkit.host",
    "i2vkit.advice",
    "i2vkit.doctor",
    "mirrors",
    "env.setup",
    "env.weights",
    "env.commands",
    "env.lock",
    "runtime.loader",
    "i2vkit.planner",
    "images",
]


def test_light_modules_do_not_import_torch():
    code = (
        f"import sys; import {', '.join(LIGHT_MODULES)}; "
        "heavy = [m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


@pytest.mark.slow
def test_fresh_venv_with_only_the_light_layer(tmp_path):
    """`pip install .` into an empty venv, then `invoke --list` and `invoke doctor --json`."""
    venv.create(tmp_path / "venv", with_pip=True)
    py = tmp_path / "venv" / "bin" / "python"
    subprocess.run([py, "-m", "pip", "install", "-q", str(ROOT)], check=True, timeout=900)
    freeze = subprocess.run([py, "-m", "pip", "freeze"], capture_output=True, text=True).stdout
    installed = {line.split("==")[0].lower() for line in freeze.splitlines()}
    assert not installed & {"torch", "diffusers", "transformers"}, installed
    subprocess.run([py, "-c", "import tasks"], cwd=ROOT, check=True)
    listing = subprocess.run(
        [py, "-m", "invoke", "--list"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert "doctor" in listing
    subprocess.run(
        [py, "-m", "invoke", "doctor", "--json"], cwd=ROOT, check=True, capture_output=True
    )
