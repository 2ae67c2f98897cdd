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
