"""A cache that outlives a test session (downloads, debootstrap, dockerd's layers): under
~/.cache/i2vkit-test, or $I2VKIT_TEST_CACHE. Not XDG_CACHE_HOME: the autouse clean_environ
points that at a folder per test."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    root = Path(os.environ.get("I2VKIT_TEST_CACHE") or Path.home() / ".cache" / "i2vkit-test")
    root.mkdir(parents=True, exist_ok=True)
    return root
