"""What setup installed, recorded inside the env, so a re-run with nothing changed is a no-op
that touches no network and returns in well under 2 s."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from i2vkit import files

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
    # 0644: an image's unprivileged user must read its env's record too
    files.write_text(prefix / STATE, json.dumps(asdict(state), indent=2), mode=0o644)


def now() -> float:
    return time.time()
