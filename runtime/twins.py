"""The tiny twins (`demo`, `demo-svd`, `wan-demo`, ...): each family's pipeline at toy sizes with
random weights (runtime/pipelines/<family>.py `build_tiny`), built and saved locally; and the
random LoRAs of the twins' `-fast` entries (`build_lora`).

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


def save_lora(folder: Path, family: str, twin: str = "", seed: int = 0) -> Path:
    """The random LoRA of a twin's `-fast` entry (the family's `build_lora`), saved as
    safetensors files in `folder` atomically."""
    from safetensors.torch import save_file

    build = FAMILIES[family].build_lora
    if build is None:
        raise ValueError(f"family {family!r} has no LoRA twin")
    with files.replacing_folder(Path(folder)) as tmp:
        for name, state in build(twin, seed=seed).items():
            save_file({k: v.contiguous() for k, v in state.items()}, tmp / name)
    return Path(folder)
