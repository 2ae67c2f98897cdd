"""What setup installed, recorded inside the env, so a re-run with nothing changed is a no-op
that touches no network and returns in well under 2 s."""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

STATE = ".i2vkit-setup.json"


@dataclass(frozen=True)
class EnvState:
    lock_hash: str
    variant: str
    backend: str
    python: str  # the env's interpreter
    torch: str
    mirrors: dict[str, str]  # kind -> mirror the files came from
    created: float
    python_version: str = ""  # the venv's base interpreter ("3.11"); "" for a conda env

    def matches(self, lock_hash: str, variant: str, backend: str, python_version: str) -> bool:
        """The mirror is not compared: the same lock from another mirror is the same env."""
        mine = (self.lock_hash, self.variant, self.backend, self.python_version)
        return mine == (lock_hash, variant, backend, python_version)


def read(prefix: Path) -> EnvState | None:
    path = prefix / STATE
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        state = EnvState(**data)
    except (OSError, ValueError, TypeError):
        return None
    return state if Path(state.python).exists() else None


def write(prefix: Path, state: EnvState) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".state.", dir=prefix)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(asdict(state), f, indent=2)
    # mkstemp makes it 0600: an image's unprivileged user must read its env's record too
    Path(tmp).chmod(0o644)
    Path(tmp).replace(prefix / STATE)


def now() -> float:
    return time.time()
