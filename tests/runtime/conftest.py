"""Tiny real pipelines for the runtime tests: built once per session with runtime/twins.py,
saved with save_pretrained, loaded back with from_pretrained (offline)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from i2vkit.settings import resolve


@pytest.fixture(scope="session")
def demo_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An i2vkit home whose models/ holds every saved tiny twin (demo, demo-svd, the Wan ones)."""
    from i2vkit import catalogue
    from i2vkit.runtime import twins

    home = tmp_path_factory.mktemp("i2vkit-home")
    for model in (m for m in catalogue.models() if m.local and not m.base):  # -fast: its base's
        twins.save(home / "models" / model.name, model.family, twin=model.twin)
    return home


@pytest.fixture
def app(demo_models: Path, tmp_path: Path):
    """Settings whose home has the demo models (copied: tests may not change the shared one)."""
    home = tmp_path / "home"
    shutil.copytree(demo_models, home)
    return resolve({"home": str(home), "hub_cache": str(tmp_path / "hub")}, {}, {})


@pytest.fixture
def image():
    """A 96x128 gradient: not square, so the centre crops are exercised."""
    import numpy as np
    from PIL import Image

    y, x = np.mgrid[0:96, 0:128]
    rgb = np.stack([x * 2, y * 2, (x + y) % 256], axis=-1).astype("uint8")
    return Image.fromarray(rgb)
