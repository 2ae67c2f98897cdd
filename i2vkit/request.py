"""A generation request: a preset and the model's defaults, the user's overrides, every bound
checked first. The one model of a request's settings: the CLI's flags, the API's form and the
memory planner all go through it.

`Overrides` (what a user may set) is a pydantic model whose bounds are presets.toml's [limits],
built once from that file; `make` validates the overrides with it and merges them into a
`Request`. Validation failures become RequestError sentences that name the value and the range
(`sentence` is also what the API answers with). Light: no torch.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import ConfigDict, Field, ValidationError, create_model
from pydantic_core import ErrorDetails

from i2vkit import catalogue
from i2vkit.data import StrictModel
from i2vkit.errors import RequestError

SCHEDULERS = ("ddim", "dpm++", "euler", "unipc")  # each model takes some (models.toml)


class Request(StrictModel):
    """What a job runs with, after the preset and the overrides are merged and checked."""

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
    guidance_2: float | None = None  # the second expert's (Wan 2.2 A14B); None: the model's
    shift: float | None = None  # the flow-matching shift (the model's; not a user setting)

    def replace(self, **changes: Any) -> Request:
        """A copy with `changes` (the planner's alternatives, a retry's safer settings)."""
        return self.model_copy(update=changes)


@cache
def bounds() -> dict[str, tuple[float, float]]:
    """Each numeric setting's allowed range, from presets.toml's [limits]."""
    lim = catalogue.limits()
    return {
        "height": (lim.size_min, lim.size_max),
        "width": (lim.size_min, lim.size_max),
        "frames": (lim.frames_min, lim.frames_max),
        "steps": (lim.steps_min, lim.steps_max),
        "guidance": (lim.guidance_min, lim.guidance_max),
        "fps": (lim.fps_min, lim.fps_max),
        "decode_chunk": (lim.decode_chunk_min, lim.decode_chunk_max),
        "seed": (0, lim.seed_max),
        "guidance_2": (lim.guidance_min, lim.guidance_max),
    }


@cache
def overrides_model() -> Any:
    """The pydantic model of what a user may set (every field optional, None = the preset's):
    types, ranges and the prompt length, from presets.toml. What depends on the model (its size
    multiple, its frame rule, its schedulers) is checked by `make`, which knows the model."""
    lim = catalogue.limits()
    fields: dict[str, Any] = {}
    for name, (low, high) in bounds().items():
        kind = float if name.startswith("guidance") else int
        fields[name] = (kind | None, Field(None, ge=low, le=high))
    fields["scheduler"] = (str | None, Field(None, max_length=16))
    for name in ("prompt", "negative_prompt"):
        fields[name] = (str | None, Field(None, max_length=lim.prompt_max_chars))
    config = ConfigDict(extra="forbid", frozen=True)
    return create_model("Overrides", __config__=config, **fields)


def sentence(error: ErrorDetails) -> str:
    """One of pydantic's complaints as i2vkit says it: the value, then what would do."""
    name = str(error["loc"][-1]) if error.get("loc") else "request"
    raw, ctx, kind = error.get("input"), error.get("ctx") or {}, error.get("type", "")
    value = short(raw)
    if kind == "multiple_of":
        k = int(ctx["multiple_of"])
        low = int(bounds().get(name, (k, k))[0])
        try:
            near = max(low, round(float(raw or 0) / k) * k)
        except (TypeError, ValueError):
            near = low
        return f"{name}={value} is not a multiple of {k}; try {name}={near}"
    if kind in ("greater_than_equal", "less_than_equal"):
        low, high = bounds().get(name, (ctx.get("ge", "?"), ctx.get("le", "?")))
        return f"{name}={value} is out of range; allowed: {_number(low)} to {_number(high)}"
    if kind in ("int_parsing", "int_from_float", "int_type"):
        return f"{name}={value!r} is not a whole number"
    if kind in ("float_parsing", "float_type"):
        return f"{name}={value!r} is not a number"
    if kind == "string_too_long":
        return f"{name} is longer than {ctx.get('max_length')} characters"
    if kind == "extra_forbidden":
        return f"unknown setting {name!r}"
    if kind == "missing":
        return f"{name} is required"
    return f"{name}: {error.get('msg', 'invalid')}"


def short(value: object, limit: int = 40) -> object:
    """A value as an error may echo it: a long string cut (a 1 MB prompt is not sent back)."""
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]}... ({len(value)} characters)"
    return value


def _number(value: object) -> str:
    """4294967295, not 4.29497e+09: whole numbers whole, others as they are."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def make(model: str, preset: str = "preview", **overrides: object) -> Request:
    """Merge `preset` (the model's own numbers for it, where it has them) and the model's
    defaults with `overrides` (None = not given), every bound checked."""
    entry = catalogue.model(model)
    base = catalogue.preset(preset)
    own = entry.presets.get(preset, catalogue.PresetSize())
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        checked = overrides_model().model_validate(given)
    except ValidationError as error:
        raise RequestError("; ".join(sentence(e) for e in error.errors())) from error
    values: dict[str, object] = {
        "model": entry.name,
        "height": own.height or base.height,
        "width": own.width or base.width,
        "frames": own.frames or base.frames,
        "steps": own.steps or base.steps,
        "guidance": entry.guidance,
        "guidance_2": entry.guidance_2,
        "fps": entry.fps,
        "seed": 0,
        "decode_chunk": 8,
        "scheduler": entry.scheduler,
        "shift": entry.shift,
    }
    values.update(checked.model_dump(exclude_none=True))
    request = Request.model_validate(values)
    _check_for(entry, request)
    return request


def _check_for(entry: catalogue.Model, r: Request) -> None:
    """What depends on the model: its latent grid, its frame rule, its schedulers."""
    problems = []
    k = entry.size_multiple
    for name in ("height", "width"):
        value = getattr(r, name)
        if value % k:
            near = max(k, round(value / k) * k)
            problems.append(f"{name}={value} is not a multiple of {k}; try {name}={near}")
    step = entry.frames_step
    if step > 1 and (r.frames - 1) % step:
        near = max(step + 1, round((r.frames - 1) / step) * step + 1)
        problems.append(
            f"frames={r.frames} does not fit {entry.name} (frames = {step}k+1: its VAE packs "
            f"{step} frames into one latent); try frames={near}"
        )
    if entry.frames_max and r.frames > entry.frames_max:
        problems.append(
            f"frames={r.frames} is more than {entry.name} makes (at most {entry.frames_max}); "
            f"try frames={entry.frames_max}"
        )
    if r.scheduler not in entry.schedulers:
        problems.append(
            f"scheduler {r.scheduler!r} is unknown for {entry.name}; known: "
            f"{', '.join(entry.schedulers)}"
        )
    if problems:
        raise RequestError("; ".join(problems))


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
