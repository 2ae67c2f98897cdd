"""Shared fixtures: a clean environment per test, and the fake libnvidia-ml under real pynvml."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"

# Variables that would make a test depend on the developer's machine.
_LEAKY = ("I2VKIT_", "HF_", "XDG_", "CUDA_VISIBLE_DEVICES", "FAKE_NVML_", "LD_LIBRARY_PATH")


@pytest.fixture(autouse=True)
def clean_environ(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Each test gets its own caches and no i2vkit/HF variables from the outside."""
    for name in list(os.environ):
        if name.startswith(_LEAKY):
            monkeypatch.delenv(name)
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("I2VKIT_HOME", str(home / "i2vkit"))
    monkeypatch.setenv("HF_HOME", str(home / "hf"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    return home


@pytest.fixture(scope="session")
def fake_nvml_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding libnvidia-ml.so.1 compiled from tests/fixtures/fake_nvml.c."""
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        pytest.skip("no C compiler: install gcc to build the fake libnvidia-ml")
    out = tmp_path_factory.mktemp("fake_nvml")
    subprocess.run(
        [
            gcc,
            "-shared",
            "-fPIC",
            "-O1",
            "-Wall",
            "-Werror",
            "-o",
            str(out / "libnvidia-ml.so.1"),
            str(FIXTURES / "fake_nvml.c"),
        ],
        check=True,
    )
    return out


def run_invoke(*args: str, env: dict[str, str] | None = None, timeout: float = 120):
    """Run `invoke ARGS` from the project root in a fresh interpreter, as a user would."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "invoke", *args],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def conda_channel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local conda-forge stand-in of tiny noarch packages (tests/env/conda_fixtures.py)."""
    from tests.env.conda_fixtures import build_channel

    return build_channel(tmp_path_factory.mktemp("conda-channel"))


@pytest.fixture(scope="session")
def conda_lockfile(tmp_path_factory: pytest.TempPathFactory, conda_channel: Path) -> Path:
    """A conda-lock v1 lockfile for linux-64 and linux-aarch64, solved against the local
    channel as a mirror of conda-forge: it holds canonical conda.anaconda.org URLs."""
    from env import condalock
    from tests.env.conda_fixtures import CANONICAL_CF, SPEC

    folder = tmp_path_factory.mktemp("conda-lock")
    (folder / "environment.yml").write_text(SPEC, encoding="utf-8")
    return condalock.lock(
        folder / "environment.yml",
        out_path=folder / "conda-lock.yml",
        rules=[(CANONICAL_CF, conda_channel.as_uri())],
        cache_dir=folder / "repodata-cache",
    )
