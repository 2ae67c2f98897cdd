"""Run a runtime task inside the env `invoke setup` built, when this interpreter lacks the
runtime layer (the light toolkit's venv, say): the same `invoke` command line, re-executed by
the env's Python. An image or a dev install that has the runtime layer runs in place."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from i2vkit.env import state
from i2vkit.errors import ConfigError
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
        raise ConfigError(
            "the runtime layer (torch, diffusers) is not installed here and there is no env: "
            "run `invoke setup` first (or pip install 'i2vkit[runtime]')"
        )
    sys.stdout.flush()
    os.execv(python, [str(python), "-m", "invoke", *sys.argv[1:]])  # noqa: S606 - on purpose
