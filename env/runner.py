"""Run a runtime task inside the env `i2vkit setup` built, when this interpreter lacks the
runtime layer (the light toolkit's venv, say): the same command line, re-executed by the env's
Python. An image or a dev install that has the runtime layer runs in place."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from i2vkit.env import state
from i2vkit.errors import EnvMissingError
from i2vkit.settings import Settings


def has_runtime() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("torch", "diffusers"))


def env_python(app: Settings) -> Path | None:
    found = state.read(app.home / "envs" / "default")
    return Path(found.python) if found else None


def ensure_runtime(app: Settings) -> None:
    """Return if this interpreter can run the runtime; else exec the env's (never returns)."""
    if has_runtime():
        return
    python = env_python(app)
    if python is None:
        raise EnvMissingError(
            "the runtime layer (torch, diffusers) is not installed here and there is no env: "
            "run `i2vkit setup` first (or pip install 'i2vkit[runtime]')"
        )
    sys.stdout.flush()
    # the same program again: `invoke` in a checkout (tasks.py, invoke.yaml beside it), else the
    # i2vkit console script (`python -m i2vkit`); the env runs this very i2vkit (env/venv.py)
    started = Path(sys.argv[0])
    name = started.parent.name if started.name == "__main__.py" else started.name  # python -m
    program = "invoke" if name in ("invoke", "inv") else "i2vkit"
    os.execv(python, [str(python), "-m", program, *sys.argv[1:]])  # noqa: S606 - on purpose
