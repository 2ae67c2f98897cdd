"""Running i2vkit's commands as a user does: a fresh interpreter, from the checkout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_invoke(*args: str, env: dict[str, str] | None = None, timeout: float = 120):
    """`invoke ARGS` from the project root in a fresh interpreter."""
    return subprocess.run(
        [sys.executable, "-m", "invoke", *args],
        cwd=ROOT, env={**os.environ, **(env or {})}, capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip


def run_i2vkit(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120):
    """The `i2vkit` console script's program (`python -m i2vkit`) from any folder."""
    return subprocess.run(
        [sys.executable, "-m", "i2vkit", *args],
        cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip


def on_fake_host(task: str, lib_dir: Path, *args: str, **fake: str):
    """`invoke TASK ARGS` on a host made by the fake libnvidia-ml in `lib_dir`
    (tests/fixtures/fake_nvml.c), described by `fake` as FAKE_NVML_* variables (gpus=...,
    driver=..., cuda=...)."""
    env = {"LD_LIBRARY_PATH": str(lib_dir), "COLUMNS": "200"}
    env.update({f"FAKE_NVML_{k.upper()}": v for k, v in fake.items()})
    return run_invoke(task, *args, env=env)
