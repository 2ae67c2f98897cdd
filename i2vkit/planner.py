"""The memory planner: estimate a job's peak memory before it runs, pick the fastest memory
strategy under which it fits, or refuse naming settings that would.

peak = resident weights (by strategy) + the larger of the denoising and decoding activations
       + a fixed cost (CUDA context, workspace)

Strategies, from the fastest to the leanest (STRATEGIES): everything on the device; the
denoiser(s) stored in fp8 (layerwise casting, computed in bf16); the denoiser(s) group-offloaded
leaf by leaf with CUDA streams prefetching; both; one component on the device at a time (model
CPU offload); and the leanest: fp8 denoisers, every model group-offloaded (the text and image
encoders too: Wan's UMT5 alone is 11 GB in bf16) and the VAE tiled. Weights come from the
catalogue's parameters per component; activation costs from profiles
(i2vkit/data/memory_profiles.toml, plus rows `i2vkit calibrate` measured on this host under
$I2VKIT_HOME/memory_profiles.toml, which win).
The free memory is an argument: the caller reads it at the device boundary (runtime/measure.py
`device_memory`), tests pass what they need.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from pydantic import Field

from i2vkit import catalogue
from i2vkit.data import StrictModel, load_toml
from i2vkit.errors import UnknownNameError, WontFitError
from i2vkit.request import Request

GIB = 1024**3
MARGIN = 0.90  # plan to use at most 90% of what is free: allocator fragmentation, other users
ELEMENT_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2}
DENOISERS = ("transformer", "transformer_2", "unet")
ENCODERS = (
    "text_encoder",
    "text_encoder_2",
    "image_encoder",
)  # text_encoder_2: HunyuanVideo 1.5's byT5
# An offloaded denoiser holds about two of its ~40 blocks on the device at once (the one that
# runs and the one the stream prefetches): 5% of its weights.
ONLOADED = 0.05
TILE_PIXELS = 256 * 256  # a tiled VAE decodes tiles of this size (diffusers' defaults)


@dataclass(frozen=True)
class Strategy:
    """Where the weights live while a job runs; applied when the model loads
    (runtime/loader.py)."""

    name: str
    fp8: bool = False  # the denoiser(s) stored in float8_e4m3fn, computed in the job's dtype
    group_offload: bool = False  # the denoiser(s) streamed to the device leaf by leaf
    model_offload: bool = False  # one component on the device at a time
    encoders_offload: bool = False  # the text/image encoders streamed to the device too
    vae_tiling: bool = False

    def describe(self) -> str:
        parts = [
            text
            for on, text in (
                (self.fp8, "fp8 storage"),
                (self.group_offload, "group offload"),
                (self.model_offload, "model CPU offload"),
                (self.encoders_offload, "encoders offloaded"),
                (self.vae_tiling, "VAE tiling"),
            )
            if on
        ]
        return " + ".join(parts) or "all on the device"


STRATEGIES = (
    Strategy("full"),
    Strategy("fp8", fp8=True),
    Strategy("offload", group_offload=True),
    Strategy("fp8+offload", fp8=True, group_offload=True),
    Strategy("cpu-offload", model_offload=True),
    Strategy("lean", fp8=True, group_offload=True, encoders_offload=True, vae_tiling=True),
)
FULL = STRATEGIES[0]


def strategy(name: str) -> Strategy:
    for found in STRATEGIES:
        if found.name == name:
            return found
    raise UnknownNameError("memory strategy", name, ["auto", *(s.name for s in STRATEGIES)])


def candidates(device: str) -> tuple[Strategy, ...]:
    """On a CPU there is nowhere to offload to: only the storage dtype changes anything."""
    return STRATEGIES if device.startswith("cuda") else STRATEGIES[:2]


class Profile(StrictModel):
    model: str
    device: str  # "cuda" or "cpu"
    dtype: str
    weights_bytes: int = Field(ge=0)  # all weights at dtype (used when no components are known)
    unet_bytes_per_position: float = Field(ge=0)  # denoiser activations per latent position
    vae_bytes_per_pixel: float = Field(ge=0)  # decoder activations per decoded pixel
    fixed_bytes: int = Field(ge=0)
    source: str


class Profiles(StrictModel):
    schema_: int = Field(alias="schema")
    profile: tuple[Profile, ...] = ()


@dataclass(frozen=True)
class Estimate:
    weights: int  # resident under the strategy
    denoise: int
    decode: int
    fixed: int
    source: str
    strategy: Strategy = FULL

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
    element size; a `-fast` entry uses its base model's rows (a fused LoRA changes no shape);
    a model with no row at all is estimated from its parameter count."""
    kind = "cuda" if device.startswith("cuda") else "cpu"
    names = {model, catalogue.model(model).base} - {""}
    rows = [p for p in profiles(home) if p.model in names and p.device == kind]
    rows.sort(key=lambda p: p.model != model)  # the model's own rows (calibrated) first
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


def resident_weights(model: catalogue.Model, profile: Profile, plan: Strategy) -> int:
    """Weight bytes on the device while a job runs under `plan`."""
    element = ELEMENT_BYTES[profile.dtype]
    if not model.components:  # measured or estimated as one block: the denoiser dominates
        params = {"unet": profile.weights_bytes // element}
    else:
        params = model.components
    sizes = []
    for name, count in params.items():
        denoiser = name in DENOISERS
        size = count * (1 if plan.fp8 and denoiser and element > 1 else element)
        streamed = (plan.group_offload and denoiser) or (plan.encoders_offload and name in ENCODERS)
        sizes.append(int(size * (ONLOADED if streamed else 1)))
    return max(sizes) if plan.model_offload else sum(sizes)


def latent_positions(model: catalogue.Model, s: Request) -> int:
    """Positions a denoiser forward holds activations for: CFG doubles them where the family
    batches the two passes (the UNets); Wan runs them one after the other."""
    cfg = 2 if (s.guidance > 1 or model.cfg_always) and model.cfg_batched else 1
    grid = model.latent_spatial * model.patch
    frames = (s.frames - 1) // model.latent_temporal + 1
    return cfg * frames * (s.height // grid) * (s.width // grid)


def estimate(s: Request, profile: Profile, plan: Strategy = FULL) -> Estimate:
    model = catalogue.model(s.model)
    if model.vae_whole_video:  # every frame in one decoder pass
        chunk = s.frames
    elif model.latent_temporal > 1:  # one latent frame at a time (Wan's causal decoder)
        chunk = model.latent_temporal
    else:
        chunk = min(s.decode_chunk, s.frames)
    tiled = plan.vae_tiling or model.vae_tiling
    pixels = chunk * min(s.height * s.width, TILE_PIXELS if tiled else 10**12)
    return Estimate(
        weights=resident_weights(model, profile, plan),
        denoise=int(profile.unet_bytes_per_position * latent_positions(model, s)),
        decode=int(profile.vae_bytes_per_pixel * pixels),
        fixed=profile.fixed_bytes,
        source=profile.source,
        strategy=plan,
    )


def fits(s: Request, profile: Profile, free: int, plan: Strategy = FULL) -> bool:
    return estimate(s, profile, plan).peak <= free * MARGIN


def alternatives(
    s: Request, profile: Profile, free: int, plan: Strategy = FULL,
    options: tuple[Strategy, ...] = STRATEGIES,
) -> list[str]:  # fmt: skip
    """A leaner strategy among `options` (the device's) under which the job fits as asked, or
    nearby settings that fit under `plan`, smallest change first."""
    model = catalogue.model(s.model)
    found: list[str] = []
    candidates_: list[tuple[str, Request]] = []
    if s.decode_chunk > 1 and model.latent_temporal == 1:
        candidates_.append(("decode_chunk=1", s.replace(decode_chunk=1)))
    for preset in reversed(catalogue.presets()):
        size = model.presets.get(preset.name, catalogue.PresetSize())
        height, width = size.height or preset.height, size.width or preset.width
        if height * width < s.height * s.width:
            smaller = s.replace(height=height, width=width, decode_chunk=1)
            candidates_.append((f"height={height}, width={width}", smaller))
    step, frames = model.frames_step, s.frames
    while frames > step + 1:
        frames = max(step + 1, (frames - 1) // (2 * step) * step + 1) if step > 1 else frames // 2
        candidates_.append((f"frames={frames}", s.replace(frames=frames, decode_chunk=1)))
    leaner = options[options.index(plan) + 1 :] if plan in options else ()
    for other in leaner:  # the same job, the weights placed differently
        if fits(s, profile, free, other):
            found.append(f"memory={other.name} ({other.describe()})")
            break
    for label, changed in candidates_:
        label += "" if "decode_chunk" in label else ", decode_chunk=1"
        # presets the model sizes alike give the same label once
        if label not in found and fits(changed, profile, free, plan) and len(found) < 3:
            found.append(label)
    if resident_weights(model, profile, plan) > free * MARGIN:
        found.append("a device with more memory (the weights alone do not fit)")
    return found


def _refusal(
    s: Request, est: Estimate, profile: Profile, free: int, options: tuple[Strategy, ...]
) -> WontFitError:
    return WontFitError(
        f"{s.height}x{s.width}, {s.frames} frames needs about {est.peak / GIB:.1f} GiB "
        f"({profile.dtype}, {est.strategy.describe()}), {free / GIB:.1f} GiB is free "
        f"({profile.source.split(':')[0]}) and jobs are planned into {MARGIN:.0%} of it "
        "(a margin for fragmentation and other users)",
        alternatives(s, profile, free, est.strategy, options),
    )


def check(
    s: Request, profile: Profile, free: int, plan: Strategy = FULL,
    options: tuple[Strategy, ...] = STRATEGIES,
) -> Estimate:  # fmt: skip
    """The estimate if the job fits in `free` bytes under `plan`; else WontFitError with
    settings that would (or a leaner strategy among `options`, the device's)."""
    est = estimate(s, profile, plan)
    if est.peak <= free * MARGIN:
        return est
    raise _refusal(s, est, profile, free, options)


def choose(s: Request, profile: Profile, free: int, device: str, asked: str = "auto") -> Estimate:
    """The fastest strategy under which `s` fits (or the one `asked` for), as its estimate;
    WontFitError under the leanest one, with settings that would fit, when none does."""
    options = candidates(device)
    if asked != "auto":
        return check(s, profile, free, strategy(asked), options)
    for plan in options:
        est = estimate(s, profile, plan)
        if est.peak <= free * MARGIN:
            return est
    raise _refusal(s, estimate(s, profile, options[-1]), profile, free, options)


def preset_fits(
    model: str, device: str, dtype: str, total: int, home: Path | None = None
) -> list[tuple[str, bool, Estimate]]:
    """Each preset on a device of `total` bytes: whether it fits, and the estimate under the
    fastest strategy that fits (the leanest when none does)."""
    from i2vkit import request

    profile = profile_for(model, device, dtype, home)
    out = []
    for preset in catalogue.presets():
        s = request.make(model, preset.name, decode_chunk=1)
        try:
            out.append((preset.name, True, choose(s, profile, total, device)))
        except WontFitError:
            out.append((preset.name, False, estimate(s, profile, candidates(device)[-1])))
    return out
