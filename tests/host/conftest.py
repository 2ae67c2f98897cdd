"""Hosts for the doctor and models tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def no_nvml_dir(tmp_path: Path) -> Path:
    """A folder whose libnvidia-ml.so.1 is not a library: the loader stops at it (LD_LIBRARY_PATH
    comes first), so pynvml cannot load NVML here even where a real driver is installed."""
    (tmp_path / "libnvidia-ml.so.1").write_bytes(b"")
    return tmp_path
