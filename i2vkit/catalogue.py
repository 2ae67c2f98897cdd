"""The model catalogue, presets and torch wheel variants (data files, loaded on first use), and
where a catalogued model's files are in the Hugging Face cache."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TypeVar

from pydantic import Field

from i2vkit.data import StrictModel, load_toml, packaged
from i2vkit.errors import UnknownNameError
from i2vkit.settings import Settings

DATA = packaged("i2vkit", "data")


class Preset(StrictModel):
    name: str
    tier: str  # the host tier named after the largest preset its best GPU runs
    height: int = Field(gt=0, multiple_of=8)
    width: int = Field(gt=0, multiple_of=8)
    frames: int = Field(gt=0)
    steps: int = Field(gt=0)
    cpu: bool
    note: str = ""


class Limits(StrictModel):
    size_min: int
    size_max: int
    size_multiple: int
    frames_min: int
    frames_max: int
    steps_min: int
    steps_max: int
    guidance_min: float
    guidance_max: float
    fps_min: int
    fps_max: int
    decode_chunk_min: int
    decode_chunk_max: int
    prompt_max_chars: int
    seed_max: int


class Advice(StrictModel):
    i2vgen_min_ddim_steps: int
    guidance_oversaturates: float


class Presets(StrictModel):
    schema_: int = Field(alias="schema")
    preset: tuple[Preset, ...]
    limits: Limits
    advice: Advice


class PresetSize(StrictModel):
    """A model's own numbers for a generic preset (Wan's frames are 4k+1, its sizes its own)."""

    height: int | None = None
    width: int | None = None
    frames: int | None = None
    steps: int | None = None


class Lora(StrictModel):
    """A few-step distillation LoRA, fused into the denoiser(s) when the model loads: no
    adapter overhead per step. Its files are fetched by setup like a model's."""

    repo_id: str
    revision: str  # a commit on the Hub, where one is known
    files: tuple[tuple[str, int], ...]
    transformer: str  # the file for `transformer` (Wan 2.2 A14B: the high-noise expert)
    transformer_2: str = ""  # the file for the low-noise expert, where there is one
    scale: float = 1.0  # diffusers folds alpha/rank into the weights: 1.0 is "as trained"
    license: str
    local: bool = False  # a tiny twin's LoRA, built by i2vkit (runtime/twins.py)
    source: str  # where its settings (steps, guidance, shift) come from


class Model(StrictModel):
    name: str
    repo_id: str
    revision: str  # a commit on the Hub (a tiny twin's: where a mirror publishes it)
    family: str  # runtime/pipelines/<family>.py
    variant: str  # the weights' file variant to load (fp16), "" for the plain files
    params: int
    download_bytes: int
    gated: bool
    license: str
    guidance: float
    fps: int
    scheduler: str
    files: tuple[tuple[str, int], ...]  # (path or glob pattern, expected bytes)
    note: str = ""
    local: bool = False  # a tiny twin i2vkit builds itself (runtime/twins.py)
    twin: str = ""  # which of the family's twins, where it has several
    size_multiple: int = 64  # height and width are multiples of it (the latent grid)
    frames_step: int = 1  # frames = k * frames_step + 1 (Wan's VAE packs 4 frames); 1: any
    frames_max: int = 0  # the most frames the model was trained to make; 0: presets.toml's limit
    schedulers: tuple[str, ...] = ("ddim", "dpm++", "euler")  # what the family's run takes
    shift: float | None = None  # the flow-matching schedulers' shift (Wan)
    guidance_2: float | None = None  # the second expert's guidance (Wan 2.2 A14B)
    presets: dict[str, PresetSize] = Field(default_factory=dict)  # this model's numbers
    modelscope_id: str = ""  # the same files on ModelScope, where the publisher put them
    modelscope_revision: str = "master"  # ModelScope names branches, not commits
    components: dict[str, int] = Field(default_factory=dict)  # parameters per component
    # the latent grid, for the memory planner: pixels per latent cell, frames per latent frame,
    # the denoiser's patch, and whether CFG's two passes run as one batch
    latent_spatial: int = 8
    latent_temporal: int = 1
    patch: int = 1
    cfg_batched: bool = True
    cfg_always: bool = False  # CFG runs at any guidance (LTX-2: its audio guidance keeps it on)
    lora: Lora | None = None  # fused at load: a few-step `-fast` entry
    base: str = ""  # the catalogue model whose weights a `-fast` entry loads (and profiles)
    kind: str = "pipeline"  # "lora" for lora_files()'s view
    # a distilled checkpoint's own timestep schedule, used when a job runs len(timesteps) steps
    timesteps: tuple[float, ...] = ()
    # the family's extra call settings (LTX's decode timestep, LTX-2's guidance blocks, ...)
    call: dict[str, float | bool | list[int]] = Field(default_factory=dict)
    legacy: bool = False  # kept working, not where new work goes (shown by `i2vkit models`)
    # the VAE decodes every frame in one pass (LTX, HunyuanVideo 1.5), so its memory grows with
    # the frames; and whether it is always tiled (as the family's docs example does)
    vae_whole_video: bool = False
    vae_tiling: bool = False


def lora_files(model: Model) -> Model:
    """A model's LoRA as a fetchable repo: the same shape as a model, so setup's sources,
    verification and cache layout serve it unchanged."""
    assert model.lora is not None
    lora = model.lora
    return model.model_copy(update={
        "name": f"{model.name}-lora", "repo_id": lora.repo_id, "revision": lora.revision,
        "files": lora.files, "download_bytes": sum(size for _p, size in lora.files),
        "modelscope_id": "", "local": lora.local, "lora": None, "kind": "lora",
        "license": lora.license,
    })  # fmt: skip


class Models(StrictModel):
    schema_: int = Field(alias="schema")
    model: tuple[Model, ...]


class TorchVariant(StrictModel):
    name: str
    cuda: str
    min_driver_linux: str
    min_driver_linux_compat: str
    archs: tuple[str, ...]
    first_torch: str
    last_torch: str
    experimental_below: str = ""
    index_url: str
    source: str
    note: str = ""


class ArchDriver(StrictModel):
    capability: str
    family: str
    min_driver_linux: str
    source: str
    note: str = ""


class TorchVariants(StrictModel):
    schema_: int = Field(alias="schema")
    torch: str  # the torch release i2vkit pins
    variant: tuple[TorchVariant, ...]
    arch_driver: tuple[ArchDriver, ...] = ()


@cache
def _presets_file() -> Presets:
    return load_toml(DATA / "presets.toml", Presets)


def presets() -> tuple[Preset, ...]:
    return _presets_file().preset


def limits() -> Limits:
    return _presets_file().limits


def quality_advice() -> Advice:
    return _presets_file().advice


@cache
def models() -> tuple[Model, ...]:
    return load_toml(DATA / "models.toml", Models).model


@cache
def torch_variants() -> TorchVariants:
    return load_toml(DATA / "torch_variants.toml", TorchVariants)


def preset(name: str) -> Preset:
    return _by_name("preset", name, presets())


def model(name: str) -> Model:
    return _by_name("model", name, models())


T = TypeVar("T", Preset, Model)


def _by_name(kind: str, name: str, items: tuple[T, ...]) -> T:
    for item in items:
        if item.name == name:
            return item
    raise UnknownNameError(kind, name, (i.name for i in items))


def snapshot(model: Model, settings: Settings) -> Path | None:
    """The model's snapshot folder in the HF cache, without the network; None if absent."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        folder = snapshot_download(
            model.repo_id,
            revision=model.revision,
            cache_dir=settings.hub_cache,
            local_files_only=True,
        )
    except (LocalEntryNotFoundError, OSError, ValueError):
        return None
    return Path(folder)
