"""The wheel, as `pip install i2vkit` users get it: one import package and its data, a console
script that works from any folder, and the checkout-only tasks saying they need a checkout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from i2vkit import tools
from tests.helpers import fresh
from tests.helpers.cache import cache_root


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The wheel built from a copy of the checkout (nothing is built inside the checkout), then
    installed with its dependencies into a fresh venv."""
    root = tmp_path_factory.mktemp("wheel")
    source = fresh.copy_checkout(root / "source")
    dist = root / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(source)],
        check=True, timeout=600,
    )  # fmt: skip
    (wheel,) = dist.glob("i2vkit-*.whl")
    venv = root / "venv"
    env = {**os.environ, "UV_CACHE_DIR": str(cache_root() / "uv")}
    subprocess.run([tools.uv(), "venv", "-q", "--python", sys.executable, str(venv)], check=True)
    subprocess.run(
        [tools.uv(), "pip", "install", "-q", "--python", str(venv / "bin" / "python"), str(wheel)],
        check=True, env=env, timeout=900,
    )  # fmt: skip
    return {"wheel": wheel, "venv": venv, "elsewhere": root}


def test_the_wheel_holds_one_package_with_its_data(installed):
    names = zipfile.ZipFile(installed["wheel"]).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"i2vkit", installed["wheel"].name.split("-py3")[0] + ".dist-info"}, tops
    for data in (
        "i2vkit/data/models.toml", "i2vkit/data/doctor.schema.json",
        "i2vkit/mirrors/data/mirrors.toml", "i2vkit/env/requirements/runtime.txt",
        "i2vkit/images/Dockerfile", "i2vkit/runtime/server/web/index.html",
        "i2vkit/runtime/server/web/app.js", "i2vkit/runtime/server/web/app.css",
        "i2vkit/runtime/data/fullsize/i2vgen-xl.toml", "i2vkit/runtime/pipelines/svd.py",
        "i2vkit/runtime/data/fullsize/wan.toml", "i2vkit/data/model_costs.toml",
        "i2vkit/runtime/data/fullsize/ltx.toml",
        "i2vkit/runtime/data/fullsize/hunyuan-video-1.5.toml",
        "i2vkit/runtime/pipelines/ltx.py", "i2vkit/runtime/pipelines/hunyuan_video15.py",
        "i2vkit/runtime/data/fullsize/ltx2.toml", "i2vkit/runtime/pipelines/ltx2.py",
    ):  # fmt: skip
        assert data in names, data
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "i2vkit = i2vkit.cli:main" in zipfile.ZipFile(installed["wheel"]).read(entry).decode()


def test_only_i2vkit_lands_in_site_packages(installed):
    record = next(installed["venv"].glob("lib/python*/site-packages/i2vkit-*.dist-info/RECORD"))
    paths = [line.split(",")[0] for line in record.read_text().splitlines() if line]
    tops = {p.split("/")[0] for p in paths if not p.startswith("../")}
    assert tops == {"i2vkit", record.parent.name}, tops
    scripts = [p for p in paths if p.startswith("../")]
    assert [Path(p).name for p in scripts] == ["i2vkit"]
    python = installed["venv"] / "bin" / "python"
    light = subprocess.run([python, "-c", "import torch"], capture_output=True)
    assert light.returncode != 0  # the light layer pulls no torch


def test_the_console_script_runs_doctor_from_another_folder(installed):
    script = installed["venv"] / "bin" / "i2vkit"
    done = subprocess.run([script, "doctor", "--json"], cwd=installed["elsewhere"],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["schema"] == "i2vkit.doctor/1"
    listing = subprocess.run([script, "--list"], cwd=installed["elsewhere"],
                             capture_output=True, text=True, check=True).stdout  # fmt: skip
    for task in ("doctor", "mirrors", "setup", "generate", "serve", "build-image", "run-image"):
        assert task in listing
    assert "test" not in listing.split()  # the developer's tasks stay in the checkout


@pytest.mark.parametrize("task", [["lock"], ["build-image", "--dry-run", "--cuda", "cpu"]])
def test_checkout_only_tasks_say_so(installed, task):
    done = subprocess.run([installed["venv"] / "bin" / "i2vkit", *task],
                          cwd=installed["elsewhere"], capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 2
    assert "needs an i2vkit checkout" in done.stderr and "git clone" in done.stderr
