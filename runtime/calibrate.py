"""`i2vkit calibrate`: measure a model's peak memory at two sizes and fit the planner's profile.

The denoise stage's peak grows with latent positions and the decode stage's with decoded
pixels (runtime/planner.py); two sizes give each line's slope, the smaller size's remainder the
fixed cost. Peaks come from torch.cuda.max_memory_allocated on CUDA, process RSS on CPU. The
row is written to $I2VKIT_HOME/memory_profiles.toml, where it wins over the shipped rows.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from i2vkit import files, planner, request
from i2vkit.runtime.loader import Loader
from i2vkit.runtime.runner import Runner
from i2vkit.settings import Settings

SIZES = ((128, 4), (256, 8))  # (square side, frames): small enough for CPU calibration


def _measure(runner: Runner, s: request.Request, image: Any, out: Path) -> dict[str, int]:
    from i2vkit.runtime.measure import PeakMemory
    from i2vkit.runtime.pipelines import FAMILIES
    from i2vkit.runtime.pipelines.base import Generation

    loaded = runner.setup()
    with PeakMemory(loaded.device) as meter:
        generation = Generation(s, image, lambda stage, *_: meter.mark(stage))
        FAMILIES[loaded.model.family].run(loaded.pipe, generation)
    return meter.stage_peaks


def _counts(s: request.Request) -> tuple[int, int]:
    """(latent positions, decoded pixels) of a job: the estimate with unit costs."""
    unit = planner.Profile(
        model=s.model, device="", dtype="fp32", weights_bytes=0, unet_bytes_per_position=1,
        vae_bytes_per_pixel=1, fixed_bytes=0, source="",
    )  # fmt: skip
    est = planner.estimate(s, unit)
    return est.denoise, est.decode


def sizes(model: Any) -> list[tuple[int, int]]:
    """SIZES as the model takes them: sides a multiple of its size multiple, frames of its
    frame step (Wan: 4k+1, so 4 and 8 frames become 5 and 9)."""
    out = []
    for side, frames in SIZES:
        k = model.size_multiple
        step = model.frames_step
        frames = frames if step == 1 else -(-(frames - 1) // step) * step + 1
        out.append((max(k, side // k * k), frames))
    return out


def calibrate(app: Settings, image: Any, device: str | None, dtype: str | None) -> planner.Profile:
    runner = Runner(Loader(app.model, app, device, dtype), app)
    loaded = runner.setup()
    weights = sum(
        p.numel() * p.element_size()
        for part in loaded.pipe.components.values()
        if hasattr(part, "parameters")
        for p in part.parameters()
    )
    points = []
    with tempfile.TemporaryDirectory() as tmp:
        for side, frames in sizes(loaded.model):
            s = request.make(
                app.model, "preview", height=side, width=side, frames=frames, steps=2,
                decode_chunk=frames,
            )  # fmt: skip
            peaks = _measure(runner, s, image, Path(tmp) / "v.mp4")
            points.append((*_counts(s), peaks.get("denoise", 0), peaks.get("decode", 0)))
    (p1, x1, d1, v1), (p2, x2, d2, v2) = points
    on_cuda = loaded.device.startswith("cuda")
    base = weights if on_cuda else 0  # the CUDA allocator's peak includes the weights
    per_position = max(0.0, (d2 - d1) / (p2 - p1))
    per_pixel = max(0.0, (v2 - v1) / (x2 - x1))
    fixed = max(0, int(max(d1 - per_position * p1, v1 - per_pixel * x1) - base))
    return planner.Profile(
        model=app.model,
        device="cuda" if on_cuda else "cpu",
        dtype=loaded.dtype,
        weights_bytes=weights,
        unet_bytes_per_position=round(per_position, 1),
        vae_bytes_per_pixel=round(per_pixel, 1),
        fixed_bytes=fixed,
        source=f"calibrated: {_machine(loaded.device)}, sizes {sizes(loaded.model)}",
    )


def _machine(device: str) -> str:
    if device.startswith("cuda"):
        import torch

        return torch.cuda.get_device_name(device)
    import platform

    return f"{platform.processor() or platform.machine()} CPU, {os.cpu_count()} cores"


def save(profile: planner.Profile, home: Path) -> Path:
    """Add or replace the row for (model, device, dtype) in home's profile file, atomically."""
    path = home / "memory_profiles.toml"
    key = (profile.model, profile.device, profile.dtype)
    mine = planner.profiles(home) if path.exists() else ()
    rows = [p for p in mine if p.source.startswith("calibrated")]
    rows = [p for p in rows if (p.model, p.device, p.dtype) != key]
    lines = ["# written by `i2vkit calibrate`; rows here win over i2vkit's shipped ones"]
    lines.append("schema = 1")
    for row in [profile, *rows]:
        lines.append("\n[[profile]]")
        for name, value in row.model_dump().items():
            lines.append(f"{name} = {json.dumps(value)}")  # JSON scalars are TOML scalars
    return files.write_text(path, "\n".join(lines) + "\n")
