"""The tiny twins (`demo`, `demo-svd`): each family's pipeline at toy sizes with random weights
(runtime/pipelines/<family>.py `build_tiny`), built and saved locally.

They run the whole path (setup, serve, generate) on any machine, with no GPU and no hub, and the
runtime's code paths and the memory model see the same structure as the full-size model.
"""

from __future__ import annotations

from pathlib import Path

from i2vkit import files
from i2vkit.runtime.pipelines import FAMILIES


def save(folder: Path, family: str = "i2vgen-xl", seed: int = 0, twin: str = "") -> Path:
    """Build the tiny model of `family` (its `twin` variant, where the family has several) and
    save it to `folder` atomically (temp + rename)."""
    variant = {"twin": twin} if twin else {}
    with files.replacing_folder(Path(folder)) as tmp:
        FAMILIES[family].build_tiny(seed=seed, **variant).save_pretrained(tmp)
    return Path(folder)
