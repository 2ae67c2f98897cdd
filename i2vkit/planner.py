"""The memory planner: estimate a job's peak memory before it runs; refuse what would not fit,
naming settings that would.

Profiles are data (runtime/data/memory_profiles.toml, plus rows `i2vkit calibrate` measured on
this host under $I2VKIT_HOME/memory_profiles.toml, which win). The free memory is an argument:
the caller reads it at the device boundary (runtime/measure.py `device_memory`), tests pass
what they need.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from pydantic import Field

from i2vkit import catalogue
from i2vkit.data import StrictModel, load_toml
from i2vkit.errors import WontFitError
from i2vkit.request import Request

GIB = 1024**3
MARGIN = 0.90  # plan to use at most 90% of what is free: allocator fragmentation, other users
ELEMENT_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2}


class Profile(StrictModel):
    model: str
    device: str  # "cuda" or "cpu"
    dtype: str
    weights_bytes: int = Field(ge=0)
    unet_bytes_per_position: float = Field(ge=0)
    vae_bytes_per_pixel: float = Field(ge=0)
    fixed_bytes: int = Field(ge=0)
    source: str


class Profiles(StrictModel):
    schema_: int = Field(alias="schema")
    profile: tuple[Profile, ...] = ()


@dataclass(frozen=True)
class Estimate:
    weights: int
    denoise: int
    decode: int
    fixed: int
    source: str

    @property
    def peak(self) -> int:
        return self.weights + max(self.denoise, self.decode) + self.fixed


@cache
def _shipped() -> tuple[Profile, ...]:
    return load_toml(catalogue.DATA / "memory_profiles.toml", Profiles).profile


def profiles(home: Path | None = None) -> tuple[Profile, ...]:
    local = home / "memory_profiles.toml" if home else None
    mine = load_toml(local, Profiles).profile if local and local.exists() else ()
    return mine + _shipped()  # calibrated on this host first


def profile_for(model: str, device: str, dtype: str, home: Path | None = None) -> Profile:
    """The profile row for (model, device kind, dtype); another dtype's row is rescaled by
    element size; a model with no row at all is estimated from its parameter count."""
    kind = "cuda" if device.startswith("cuda") else "cpu"
    rows = [p for p in profiles(home) if p.model == model and p.device == kind]
    for row in rows:
        if row.dtype == dtype:
            return row
    if rows:
        row = rows[0]
        ratio = ELEMENT_BYTES[dtype] / ELEMENT_BYTES[row.dtype]
        return row.model_copy(
            update={
                "dtype": dtype,
                "weights_bytes": int(row.weights_bytes * ratio),
                "unet_bytes_per_position": row.unet_bytes_per_position * ratio,
                "vae_bytes_per_pixel": row.vae_bytes_per_pixel * ratio,
                "source": f"{row.source} (rescaled from {row.dtype})",
            }
        )
    entry = catalogue.model(model)
    return Profile(
        model=model,
        device=kind,
        dtype=dtype,
        weights_bytes=entry.params * ELEMENT_BYTES[dtype],
        unet_bytes_per_position=24_576 * ELEMENT_BYTES[dtype],
        vae_bytes_per_pixel=800 * ELEMENT_BYTES[dtype],
        fixed_bytes=300_000_000,
        source="estimate: no profile for this model and device; run `i2vkit calibrate`",
    )


def estimate(s: Request, profile: Profile) -> Estimate:
    cfg_batch = 2 if s.guidance > 1 else 1
    positions = cfg_batch * s.frames * (s.height // 8) * (s.width // 8)
    pixels = min(s.decode_chunk, s.frames) * s.height * s.width
    return Estimate(
        weights=profile.weights_bytes,
        denoise=int(profile.unet_bytes_per_position * positions),
        decode=int(profile.vae_bytes_per_pixel * pixels),
        fixed=profile.fixed_bytes,
        source=profile.source,
    )


def fits(s: Request, profile: Profile, free: int) -> bool:
    return estimate(s, profile).peak <= free * MARGIN


def alternatives(s: Request, profile: Profile, free: int) -> list[str]:
    """Nearby settings that would fit, smallest change first."""
    found: list[str] = []
    candidates: list[tuple[str, Request]] = []
    if s.decode_chunk > 1:
        candidates.append(("decode_chunk=1", s.replace(decode_chunk=1)))
    for preset in reversed(catalogue.presets()):
        if preset.height * preset.width < s.height * s.width:
            smaller = s.replace(height=preset.height, width=preset.width, decode_chunk=1)
            candidates.append((f"height={preset.height}, width={preset.width}", smaller))
    frames = s.frames
    while frames > 2:
        frames = max(2, frames // 2)
        candidates.append((f"frames={frames}", s.replace(frames=frames, decode_chunk=1)))
    for label, changed in candidates:
        if fits(changed, profile, free) and len(found) < 3:
            found.append(label + ("" if "decode_chunk" in label else ", decode_chunk=1"))
    if profile.weights_bytes > free * MARGIN:
        found.append("a GPU with more memory, or CPU offload (weights alone do not fit)")
    return found


def check(s: Request, profile: Profile, free: int) -> Estimate:
    """The estimate if the job fits in `free` bytes; else WontFitError with what would fit."""
    est = estimate(s, profile)
    if est.peak <= free * MARGIN:
        return est
    raise WontFitError(
        f"{s.height}x{s.width}, {s.frames} frames needs about {est.peak / GIB:.1f} GiB "
        f"({profile.dtype}), {free / GIB:.1f} GiB is free ({profile.source.split(':')[0]})",
        alternatives(s, profile, free),
    )


def preset_fits(
    model: str, device: str, dtype: str, total: int, home: Path | None = None
) -> list[tuple[str, bool, Estimate]]:
    """Which presets fit a device of `total` bytes, with the estimate: replaces doctor's tiers."""
    from i2vkit import request

    profile = profile_for(model, device, dtype, home)
    out = []
    for preset in catalogue.presets():
        est = estimate(request.make(model, preset.name, decode_chunk=1), profile)
        out.append((preset.name, est.peak <= total * MARGIN, est))
    return out
