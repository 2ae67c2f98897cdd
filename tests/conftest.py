"""Shared fixtures: a clean environment per test, and the fake libnvidia-ml under real pynvml.

Only hardware may make a test skip: tests marked `gpu` skip where torch sees no CUDA GPU, and
any other skip fails the session (a skipped test is a test that did not run; a missing tool
is an error that names the fix, see i2vkit/tools.py)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from i2vkit import tools

FIXTURES = Path(__file__).resolve().parent / "fixtures"

# Variables that would make a test depend on the developer's machine.
_LEAKY = (
    "I2VKIT_",
    "HF_",
    "MODELSCOPE_",
    "XDG_",
    "CUDA_VISIBLE_DEVICES",
    "FAKE_NVML_",
    "LD_LIBRARY_PATH",
)


def _cuda_missing() -> str | None:
    """Why `gpu` tests cannot run here, or None when torch sees a CUDA GPU."""
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if not torch.cuda.is_available():
        return f"no CUDA GPU (torch {torch.__version__}: torch.cuda.is_available() is False)"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    gpu = [item for item in items if item.get_closest_marker("gpu")]
    reason = _cuda_missing() if gpu else None
    for item in gpu if reason else ():
        item.add_marker(pytest.mark.skip(reason=f"gpu: {reason}"))


_SKIPPED: list[str] = []


def _not_gpu(report: pytest.CollectReport | pytest.TestReport) -> bool:
    return report.skipped and not (
        isinstance(report, pytest.TestReport) and "gpu" in report.keywords
    )


def _record(report: pytest.CollectReport | pytest.TestReport) -> None:
    if _not_gpu(report):
        why = report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr
        _SKIPPED.append(f"{report.nodeid}: {why}")


pytest_runtest_logreport = pytest_collectreport = _record


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _SKIPPED and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _SKIPPED:
        terminalreporter.section("skipped without the gpu marker: the session fails", red=True)
        for line in _SKIPPED:
            terminalreporter.line(line)


@pytest.fixture(autouse=True)
def clean_environ(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Each test gets its own caches and no i2vkit/HF variables from the outside."""
    for name in list(os.environ):
        if name.startswith(_LEAKY):
            monkeypatch.delenv(name)
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("I2VKIT_HOME", str(home / "i2vkit"))
    monkeypatch.setenv("HF_HOME", str(home / "hf"))
    # the ModelScope client writes a session id under here even when given a cache folder
    monkeypatch.setenv("MODELSCOPE_HOME", str(home / "modelscope"))
    monkeypatch.setenv("MODELSCOPE_CACHE", str(home / "modelscope" / "hub"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    return home


@pytest.fixture(scope="session")
def fake_nvml_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding libnvidia-ml.so.1 compiled from tests/fixtures/fake_nvml.c."""
    gcc = tools.system("gcc", "gcc")
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


@pytest.fixture(scope="session")
def conda_channel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local conda-forge stand-in of tiny noarch packages (tests/env/conda_fixtures.py)."""
    from tests.helpers.conda import build_channel

    return build_channel(tmp_path_factory.mktemp("conda-channel"))


@pytest.fixture(scope="session")
def conda_lockfile(tmp_path_factory: pytest.TempPathFactory, conda_channel: Path) -> Path:
    """A conda-lock v1 lockfile for linux-64 and linux-aarch64, solved against the local
    channel as a mirror of conda-forge: it holds canonical conda.anaconda.org URLs."""
    from i2vkit.env import condalock
    from tests.helpers.conda import CANONICAL_CF, SPEC

    folder = tmp_path_factory.mktemp("conda-lock")
    (folder / "environment.yml").write_text(SPEC, encoding="utf-8")
    return condalock.lock(
        folder / "environment.yml",
        out_path=folder / "conda-lock.yml",
        rules=[(CANONICAL_CF, conda_channel.as_uri())],
        cache_dir=folder / "repodata-cache",
    )


@pytest.fixture(scope="session")
def captive() -> Any:
    """Answers every path, GET or HEAD, with 200 and a login page (a captive portal): the
    mirrors' and setup's failover tests both use it."""
    from tests.helpers.mirrors import CaptivePortal

    server = CaptivePortal()
    yield server
    server.stop()
