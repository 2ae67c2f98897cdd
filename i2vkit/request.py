"""A generation request: a preset, the user's overrides, and every bound checked first.

Light (no torch): the server validates requests with it before anything is queued.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from i2vkit import catalogue
from i2vkit.errors import RequestError

SCHEDULERS = ("ddim", "dpm++", "euler")


@dataclass(frozen=True)
class Request:
    """What a job runs with, after the preset and the overrides are merged."""

    model: str
    height: int
    width: int
    frames: int
    steps: int
    guidance: float
    fps: int
    seed: int
    decode_chunk: int
    scheduler: str
    prompt: str = ""
    negative_prompt: str = ""

    def replace(self, **changes: object) -> Request:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


def make(model: str, preset: str = "preview", **overrides: object) -> Request:
    """Merge `preset` and the model's defaults with `overrides` (None = not given), checked."""
    entry = catalogue.model(model)
    base = catalogue.preset(preset)
    given = {k: v for k, v in overrides.items() if v is not None}
    unknown = set(given) - {f.name for f in dataclasses.fields(Request)}
    if unknown:
        raise RequestError(f"unknown setting {sorted(unknown)[0]!r}")
    values: dict[str, object] = {
        "model": entry.name,
        "height": base.height,
        "width": base.width,
        "frames": base.frames,
        "steps": base.steps,
        "guidance": entry.guidance,
        "fps": entry.fps,
        "seed": 0,
        "decode_chunk": 8,
        "scheduler": entry.scheduler,
    }
    values.update({k: _coerce(k, v) for k, v in given.items()})
    settings = Request(**values)  # type: ignore[arg-type]
    check(settings)
    return settings


_TYPES = {f.name: f.type for f in dataclasses.fields(Request)}


def _coerce(name: str, value: object) -> object:
    """Flags and form fields arrive as text: make each the field's type, or say what is wrong."""
    kind = _TYPES[name]
    try:
        if kind == "int":
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(str(value)) if not isinstance(value, (int, float)) else int(value)
        if kind == "float":
            return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        what = "a whole number" if kind == "int" else "a number"
        raise RequestError(f"{name}={value!r} is not {what}") from None
    return str(value)


def _bounded(name: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise RequestError(f"{name}={value} is out of range; allowed: {low:g} to {high:g}")


def check(s: Request) -> None:
    """Every numeric setting bounded, sizes aligned, names known; raises RequestError."""
    lim = catalogue.limits()
    for name in ("height", "width"):
        value = getattr(s, name)
        _bounded(name, value, lim.size_min, lim.size_max)
        if value % lim.size_multiple:
            near = max(lim.size_min, round(value / lim.size_multiple) * lim.size_multiple)
            raise RequestError(
                f"{name}={value} is not a multiple of {lim.size_multiple}; try {name}={near}"
            )
    _bounded("frames", s.frames, lim.frames_min, lim.frames_max)
    _bounded("steps", s.steps, lim.steps_min, lim.steps_max)
    _bounded("guidance", s.guidance, lim.guidance_min, lim.guidance_max)
    _bounded("fps", s.fps, lim.fps_min, lim.fps_max)
    _bounded("decode_chunk", s.decode_chunk, lim.decode_chunk_min, lim.decode_chunk_max)
    _bounded("seed", s.seed, 0, lim.seed_max)
    if s.scheduler not in SCHEDULERS:
        raise RequestError(f"scheduler {s.scheduler!r} is unknown; known: {', '.join(SCHEDULERS)}")
    for name in ("prompt", "negative_prompt"):
        if len(getattr(s, name)) > lim.prompt_max_chars:
            raise RequestError(f"{name} is longer than {lim.prompt_max_chars} characters")


def quality_warnings(s: Request) -> list[str]:
    """Settings known to hurt quality (the seed's notes); advice, not refusal."""
    advice = catalogue.quality_advice()
    entry = catalogue.model(s.model)
    if entry.local:  # the demo models have random weights: there is no quality to protect
        return []
    family = entry.family
    warnings = []
    if family == "i2vgen-xl" and s.scheduler == "ddim" and s.steps < advice.i2vgen_min_ddim_steps:
        warnings.append(
            f"steps={s.steps}: I2VGen-XL degrades below {advice.i2vgen_min_ddim_steps} DDIM "
            "steps; use more steps or scheduler=dpm++"
        )
    if s.guidance > advice.guidance_oversaturates:
        warnings.append(
            f"guidance={s.guidance:g} > {advice.guidance_oversaturates:g} oversaturates colours"
        )
    return warnings
