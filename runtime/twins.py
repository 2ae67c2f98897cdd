"""The tiny twins (`demo`, `demo-svd`): each family's pipeline at toy sizes with random weights
(runtime/pipelines/<family>.py `build_tiny`), built and saved locally.

They run the whole path (setup, serve, generate) on any machine, with no GPU and no hub, and the
runtime's code paths and the memory model see the same structure as the full-size model.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from i2vkit.runtime.pipelines import FAMILIES


def save(folder: Path, family: str = "i2vgen-xl", seed: int = 0) -> Path:
    """Build the tiny model of `family` and save it to `folder` atomically (temp + rename)."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        FAMILIES[family].build_tiny(seed=seed).save_pretrained(tmp)
        if folder.exists():
            shutil.rmtree(folder)
        tmp.rename(folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder
