"""`i2vkit bench`: the model's own diffusers documentation example against i2vkit's runtime on
the same job (size, frames, steps, seed), in one run, then i2vkit with each acceleration and
with all of them; per run the end-to-end and denoising time, the denoiser calls the cache hook
skipped, the denoisers' weight bytes, the peak memory, how far its video is from i2vkit's
without options, and how far from the FLOP floor (job FLOPs / measured matmul rate).

The baseline is what a competent user writes from the docs (DOCS below, each with its source):
its dtype (bf16 for Wan, with the VAE and image encoder in fp32; fp16 for I2VGen-XL and SVD)
and its offload call, `enable_model_cpu_offload` where the example has one (it needs a GPU: on
a CPU the call is left out and the run says so). A `-fast` entry is measured against its base
model's example at the base model's full steps (its mainstream preset's) and guidance: that is
what the distillation replaces.
"""

from __future__ import annotations

import gc
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from i2vkit import catalogue, request
from i2vkit.catalogue import Model
from i2vkit.errors import ConfigError, UnknownNameError
from i2vkit.runtime import fullsize, memory, speed
from i2vkit.runtime.loader import (
    Loader,
    choose_device,
    choose_dtype,
    model_folder,
    quiet_libraries,
    torch_dtype,
)
from i2vkit.runtime.measure import PeakMemory
from i2vkit.runtime.pipelines import FAMILIES, hunyuan_video15
from i2vkit.runtime.pipelines.base import Generation
from i2vkit.runtime.video import write_mp4
from i2vkit.settings import Settings
from i2vkit.speed import Speed

OPTIONS = ("attention", "compile", "cache", "fp8")
OPTIONS_CPU = ("cache", "fp8")  # no faster attention kernel, and compile's warm-up is long


@dataclass(frozen=True)
class Docs:
    """A family's documentation example: its dtype, the components it loads in fp32, whether it
    offloads, and where it is written."""

    dtype: str
    fp32: tuple[str, ...]
    offload: bool
    source: str
    tiling: bool = False  # the example tiles its VAE


DOCS = {
    "wan": Docs("bf16", ("vae", "image_encoder"), False,
                "diffusers docs, api/pipelines/wan (image-to-video); Wan-AI's Diffusers READMEs"),
    "i2vgen-xl": Docs("fp16", (), True, "diffusers docs, api/pipelines/i2vgenxl"),
    "svd": Docs("fp16", (), True, "diffusers docs, using-diffusers/svd"),
    "ltx": Docs("bf16", (), False,
                "diffusers docs, api/pipelines/ltx_video (LTXConditionPipeline, image condition)"),
    "ltx2": Docs("bf16", (), True, "LTX2ImageToVideoPipeline's docstring example (bf16, model "
                 "CPU offload, the call's own guidance defaults)"),
    "hunyuan-video-1.5": Docs("bf16", (), True, "HunyuanVideo15ImageToVideoPipeline's docstring "
                              "example (model CPU offload, VAE tiling), at the job's size", True),
}  # fmt: skip


@dataclass
class Run:
    name: str
    dtype: str
    seconds: float  # end to end with the model loaded: encode, denoise, decode, mp4
    denoise_seconds: float
    peak_bytes: int
    calls: int  # denoiser forwards in the job
    computed: int  # of them, the ones that ran every block (the rest a cache hook skipped)
    weight_bytes: int  # the denoisers' weights as stored
    block_bytes: int  # of them, the repeated blocks' (what fp8 storage casts: 99% at full size)
    steps: int
    options: dict[str, str] = field(default_factory=dict)
    distance: float | None = None  # mean |frames - i2vkit's without options|, on [0, 1]
    note: str = ""


class _Timer:
    """The denoise stage's wall time, from the job's own progress calls."""

    def __init__(self) -> None:
        self.started: float | None = None
        self.seconds = 0.0

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage == "denoise" and self.started is None:
            self.started = time.perf_counter()
        if stage == "decode" and self.started is not None and not self.seconds:
            self.seconds = time.perf_counter() - self.started


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def _free(device: str) -> None:
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


def _median(runs: list[Run]) -> Run:
    runs = sorted(runs, key=lambda r: r.seconds)
    chosen = runs[len(runs) // 2]
    chosen.peak_bytes = max(r.peak_bytes for r in runs)
    return chosen


def _denoiser_bytes(pipe: Any) -> tuple[int, int]:
    """(all the denoisers' weight bytes, their repeated blocks')."""
    weights = memory.weight_bytes(pipe)
    total = sum(weights.get(name, 0) for name in memory.denoisers(pipe))
    blocks = 0
    for model in memory.denoisers(pipe).values():
        for block in speed.blocks(model):
            blocks += sum(p.numel() * p.element_size() for p in block.parameters())
    return total, blocks


# ---- the documentation example --------------------------------------------------------------


def docs_pipeline(entry: Model, app: Settings, device: str, random_weights: bool) -> Any:
    """The pipeline as the family's docs example builds it (random weights: the full-size
    architecture, cast the same way)."""
    from diffusers import DiffusionPipeline

    docs = DOCS[entry.family]
    dtype = torch_dtype(docs.dtype)
    if random_weights:
        pipe = fullsize.build(entry.name, device, dtype)
    else:
        folder = model_folder(entry, app)
        parts = {}
        for name in docs.fp32:  # loaded on their own in fp32, as the example does
            sub = folder / name
            if sub.is_dir():
                parts[name] = _component(folder, name, torch.float32)
        variant = {"variant": entry.variant} if entry.variant else {}
        pipe = DiffusionPipeline.from_pretrained(folder, torch_dtype=dtype, **variant, **parts)
    for name in docs.fp32:
        part = getattr(pipe, name, None)
        if part is not None:
            part.to(torch.float32)
    pipe.set_progress_bar_config(disable=True)
    if docs.offload and device.startswith("cuda"):
        pipe.enable_model_cpu_offload(device=device)
    else:
        pipe.to(device)
    if docs.tiling:
        pipe.vae.enable_tiling()
    _transformers5_alias(pipe)
    return pipe


def _component(folder: Path, name: str, dtype: torch.dtype) -> Any:
    import json

    import diffusers
    import transformers

    library, cls = json.loads((folder / "model_index.json").read_text())[name]
    module = diffusers if library == "diffusers" else transformers
    return getattr(module, cls).from_pretrained(folder / name, torch_dtype=dtype)


def _transformers5_alias(pipe: Any) -> None:
    """I2VGen-XL's pipeline reads `text_encoder.text_model.final_layer_norm` (clip_skip), which
    transformers 5 moved: the one-line alias every such user needs, nothing more."""
    text = getattr(pipe, "text_encoder", None)
    if text is not None and hasattr(text, "final_layer_norm") and not hasattr(text, "text_model"):
        object.__setattr__(
            text, "text_model", SimpleNamespace(final_layer_norm=text.final_layer_norm)
        )


def docs_call(entry: Model, pipe: Any, s: request.Request, image: Any, steps: int) -> np.ndarray:
    """The example's call, with the job's size, frames, steps, guidance and seed."""
    generator = torch.Generator("cpu").manual_seed(s.seed)
    common = {
        "image": image, "height": s.height, "width": s.width, "num_frames": s.frames,
        "num_inference_steps": steps, "generator": generator, "output_type": "np",
    }  # fmt: skip
    if entry.family == "svd":
        out = pipe(**common, decode_chunk_size=8, max_guidance_scale=s.guidance, fps=s.fps)
    elif entry.family == "wan":
        out = pipe(**common, prompt=s.prompt, negative_prompt=s.negative_prompt or None,
                   guidance_scale=s.guidance)  # fmt: skip
    elif entry.family == "ltx":  # the docs' decode settings; a distilled model's timesteps
        own = list(entry.timesteps) if len(entry.timesteps) == steps else None
        out = pipe(**common | {"num_inference_steps": None if own else steps}, timesteps=own,
                   prompt=s.prompt, negative_prompt=s.negative_prompt or None,
                   guidance_scale=s.guidance, frame_rate=s.fps, **entry.call)  # fmt: skip
    elif entry.family == "ltx2":  # as the example: video and audio, guidance 3, 24 fps
        out = pipe(**common, prompt=s.prompt, negative_prompt=s.negative_prompt or None,
                   guidance_scale=s.guidance, frame_rate=float(s.fps))  # fmt: skip
    elif entry.family == "hunyuan-video-1.5":
        # no size arguments: the stock call takes the bucket nearest the image at its target
        # size; pinned to the job's so both sides make the same video (the guidance is the
        # repo's guider, as the example leaves it)
        del common["height"], common["width"]
        with hunyuan_video15.sized(pipe, s.height, s.width):
            out = pipe(**common, prompt=s.prompt, negative_prompt=s.negative_prompt or None)
    else:
        out = pipe(**common, prompt=s.prompt, negative_prompt=s.negative_prompt or None,
                   guidance_scale=s.guidance)  # fmt: skip
    return (np.asarray(out.frames[0]) * 255).round().astype(np.uint8)


# ---- one measured configuration -------------------------------------------------------------


def _measure(name: str, dtype: str, device: str, pipe: Any, s: request.Request,
             job: Callable[[int, Callable[..., None]], np.ndarray], repeat: int,
             fps: int) -> tuple[Run, np.ndarray]:  # fmt: skip
    """A warm-up at 2 steps (kernel selection, compilation, allocator growth), then `repeat`
    timed jobs; the median, with the largest peak."""
    job(2, lambda *_: None)
    runs, frames = [], np.zeros(0)
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(repeat):
            calls, timer = speed.Calls(pipe), _Timer()
            _free(device)
            with PeakMemory(device) as peak:
                _sync(device)
                start = time.perf_counter()
                frames = job(s.steps, timer)
                write_mp4(frames, Path(tmp) / "out.mp4", fps=fps)
                _sync(device)
                seconds = time.perf_counter() - start
            calls.close()
            runs.append(Run(name, dtype, seconds, timer.seconds, peak.peak, calls.total,
                            calls.computed, *_denoiser_bytes(pipe), s.steps))  # fmt: skip
    return _median(runs), frames


def _i2vkit_job(entry: Model, pipe: Any, s: request.Request, image: Any):
    run = FAMILIES[entry.family].run

    def job(steps: int, progress: Callable[..., None]) -> np.ndarray:
        return run(pipe, Generation(s.replace(steps=steps), image, progress))

    return job


def _docs_job(entry: Model, pipe: Any, s: request.Request, image: Any):
    def job(steps: int, progress: Callable[..., None]) -> np.ndarray:
        # the example has no progress hook: its denoise time is not separated from the rest
        return docs_call(entry, pipe, s, image, steps)

    return job


def _seeded(name: str, device: str, dtype: torch.dtype) -> Any:
    """The full-size model with the same random weights every time it is built, so the runs'
    videos can be compared (their distance) as with real weights."""
    torch.manual_seed(0)
    return fullsize.build(name, device, dtype)


# each option alone: (memory strategy, accelerations)
ONE = {"attention": ("full", Speed(attention="auto")), "compile": ("full", Speed(compile=True)),
       "cache": ("full", Speed(cache="fbcache")), "fp8": ("fp8", Speed())}  # fmt: skip


def applicable(model: str, options: tuple[str, ...]) -> tuple[tuple[str, ...], list[str]]:
    """The options the model's denoiser takes, and why each other one is left out (the
    refusal the loader would give)."""
    kept, notes = [], []
    for option in options:
        refused = speed.refusals(model, ONE[option][1]) if option in ONE else []
        if refused:
            notes.append(f"+{option} not run: {'; '.join(refused)}")
        else:
            kept.append(option)
    return tuple(kept), notes


def configurations(options: tuple[str, ...], each: bool = True) -> list[tuple[str, str, Speed]]:
    """(run name, memory strategy, accelerations): i2vkit as it ships, each option alone (unless
    not `each`), all of them."""
    one = ONE
    unknown = set(options) - set(one)
    if unknown:
        raise ConfigError(f"bench option(s) {', '.join(sorted(unknown))} unknown; known: "
                          f"{', '.join(OPTIONS)}")  # fmt: skip
    runs = [("i2vkit", "full", Speed())]
    if each:
        runs += [(f"+{o}", *one[o]) for o in options]
    if len(options) > 1 or (options and not each):
        every = Speed(attention="auto" if "attention" in options else "sdpa",
                      compile="compile" in options,
                      cache="fbcache" if "cache" in options else "none")  # fmt: skip
        runs.append(("all", "fp8" if "fp8" in options else "full", every))
    return runs


def run(
    app: Settings,
    model: str,
    s: request.Request,
    image: Any,
    random_weights: bool = False,
    device: str | None = None,
    dtype: str | None = None,
    repeat: int = 3,
    options: tuple[str, ...] | None = None,
    each: bool = True,
) -> dict[str, Any]:
    """Every configuration on the same job; see the module docstring. `each`: also each option
    alone (else the docs example, as shipped, and all)."""
    quiet_libraries()
    entry = catalogue.model(model)
    device = choose_device(device)
    dtype = choose_dtype(device, dtype)
    options = options if options is not None else (
        OPTIONS if device.startswith("cuda") else OPTIONS_CPU)  # fmt: skip
    base = catalogue.model(entry.base) if entry.base else entry
    if random_weights and entry.local:
        random_weights = False  # a twin's weights are on disk already
    options, notes = applicable(entry.name, tuple(options))

    # 1. The documentation example (the base model's, at its steps and guidance, for -fast)
    docs = DOCS[base.family]
    docs_s = s
    if entry.base:  # the base model at full quality (its mainstream preset's steps, its
        # guidance and scheduler) at the job's size
        docs_s = request.make(base.name, "mainstream", height=s.height, width=s.width,
                              frames=s.frames, seed=s.seed, prompt=s.prompt)  # fmt: skip
    pipe = docs_pipeline(base, app, device, random_weights)
    try:
        flops = fullsize.job_flops_for(base.name, docs_s, pipe)  # the twin's own, for a twin
    except UnknownNameError:  # a family without a FLOP count (SVD): no floor
        flops = None
    docs_run, _ = _measure("docs example", docs.dtype, device, pipe, docs_s,
                           _docs_job(base, pipe, docs_s, image), repeat, docs_s.fps)  # fmt: skip
    if docs.offload and not device.startswith("cuda"):
        docs_run.note = "its enable_model_cpu_offload() left out: it needs a GPU"
    del pipe
    _free(device)

    # 2. i2vkit as it ships, then each option, then all of them: a fresh load each
    runs, reference = [docs_run], None
    job_flops = None
    for name, strategy, accel in configurations(tuple(options), each):
        build = (lambda d, n=entry.name: _seeded(n, device, torch_dtype(d))) \
            if random_weights else None  # fmt: skip
        loader = Loader(entry.name, app, device, dtype, strategy, sized=s, options=accel,
                        build=build)  # fmt: skip
        loaded = loader.get()
        if job_flops is None and flops is not None:  # i2vkit's job (a -fast one: fewer steps)
            job_flops = fullsize.job_flops_for(entry.name, s, loaded.pipe)
        job = _i2vkit_job(entry, loaded.pipe, s, image)
        measured, frames = _measure(name, dtype, device, loaded.pipe, s, job, repeat, s.fps)
        measured.options = dict(loaded.options)
        if reference is None:
            reference = frames.astype(np.float64)
        else:
            measured.distance = float(np.abs(frames.astype(np.float64) - reference).mean() / 255)
        runs.append(measured)
        del loader, loaded
        _free(device)
    if random_weights and entry.lora:
        notes.append(
            "random weights: the LoRA is not fused (fused, it costs nothing per step); the "
            "few-step run is the base architecture at the fast settings"
        )
    rate = fullsize.matmul_rate(device, torch_dtype(dtype))
    return {
        "model": model, "device": device, "dtype": dtype, "settings": s, "docs_settings": docs_s,
        "docs_source": docs.source, "flops": flops, "matmul_rate": rate,
        "floor_seconds": flops["total"] / rate if flops else None, "job_flops": job_flops,
        "job_floor_seconds": job_flops["total"] / rate if job_flops else None,
        "runs": runs, "repeat": repeat,
        "random_weights": random_weights, "notes": notes,
    }  # fmt: skip
