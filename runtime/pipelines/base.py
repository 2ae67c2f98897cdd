"""What every model family shares: the generation a family runs, progress, schedulers, frames.

A family module (runtime/pipelines/<family>.py) is shaped like a diffusers pipeline: inputs
checked first, numbered steps, tensor shapes in comments, dtype an explicit setting. Each job
gets a fresh scheduler made from the pipeline's config: a scheduler holds per-call state and
must never be shared between jobs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from i2vkit.errors import CancelledError, NaNOutputError
from i2vkit.request import Request

OnProgress = Callable[[str, int, int], None]  # (stage, done, total)


def _no_progress(stage: str, done: int, total: int) -> None:
    pass


@dataclass(frozen=True)
class Audio:
    """A video's sound track (LTX-2 makes one): float samples in [-1, 1]."""

    samples: np.ndarray  # (channels, samples) float32
    rate: int  # samples per second


@dataclass
class Generation:
    """One request on a loaded pipeline: what a family's `run` receives."""

    request: Request
    image: Any  # PIL.Image, RGB
    progress: OnProgress = _no_progress
    cancelled: Callable[[], bool] = lambda: False
    audio: Audio | None = None  # set by a family whose model makes sound, muxed into the mp4


@dataclass(frozen=True)
class Family:
    """A model family: how to run a loaded pipeline, and its tiny twin with random weights
    (the same components at toy sizes, so every code path runs on a CPU in seconds)."""

    name: str
    run: Callable[[Any, Generation], np.ndarray]  # -> (F, H, W, 3) uint8
    build_tiny: Callable[..., Any]  # (seed=0, scratch=None[, twin]) -> a pipeline, fp32, CPU
    pipeline: str | None = None  # the diffusers class to load with; None: model_index's own
    denoiser: str = ""  # its denoiser's diffusers class: which accelerations apply (speed.py)
    # (twin, seed) -> {file name: state dict}: a random LoRA for a twin's `-fast` entry
    build_lora: Callable[..., dict[str, dict[str, torch.Tensor]]] | None = None


def step_callback(job: Generation) -> Callable[..., dict[str, Any]]:
    """A stock pipeline's `callback_on_step_end`: progress after every step, the job's cancel
    checked there (it stops at the next step), and the decode stage begun after the last."""
    steps = job.request.steps

    def on_step(_pipe: Any, i: int, _t: Any, tensors: dict[str, Any]) -> dict[str, Any]:
        job.progress("denoise", i + 1, steps)
        if job.cancelled():
            raise CancelledError("cancelled")
        if i + 1 == steps:
            job.progress("decode", 0, 1)
        return {}

    return on_step


class EncodeDone:
    """`with EncodeDone(pipe, job):` around a stock pipeline call: the stock call has a hook
    after each step but none between encoding and the first step, so the first denoiser
    forward marks it: encode 1/1, denoise 0/steps. Without it the first step's time counted as
    encoding and the encode stage never reached its total."""

    def __init__(self, pipe: Any, job: Generation) -> None:
        self.job = job
        self.fired = False
        names = ("transformer", "transformer_2", "unet")
        models = [getattr(pipe, n) for n in names if getattr(pipe, n, None) is not None]
        self.handles = [m.register_forward_pre_hook(self._first) for m in models]

    def _first(self, *_: Any) -> None:
        if not self.fired:
            self.fired = True
            self.job.progress("encode", 1, 1)
            self.job.progress("denoise", 0, self.job.request.steps)

    def __enter__(self) -> EncodeDone:
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self.handles:
            handle.remove()


def fit(image: Any, height: int, width: int) -> Any:
    """The image cropped to the video's aspect around its centre, then resized: the
    transformer families' pipelines would stretch it."""
    from PIL import ImageOps

    return ImageOps.fit(image, (width, height))


def make_scheduler(pipe: Any, name: str) -> Any:
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler

    classes = {
        "ddim": DDIMScheduler,
        "dpm++": DPMSolverMultistepScheduler,
        "euler": EulerDiscreteScheduler,
    }
    return classes[name].from_config(pipe.scheduler.config)


def begin(job: Generation) -> None:
    """A stock-call family's first step: a cancelled job stops before any work; encoding
    begins."""
    if job.cancelled():
        raise CancelledError("cancelled")
    job.progress("encode", 0, 1)


def finish(job: Generation, frames: torch.Tensor) -> np.ndarray:
    """A stock call's `output_type="pt"` frames, (B, F, C, H, W) in [0, 1]: decoding is done,
    and the first video as (F, H, W, 3) uint8."""
    job.progress("decode", 1, 1)
    return to_uint8_frames(frames[:1].permute(0, 2, 1, 3, 4) * 2 - 1)  # (1, C, F, H, W)


def to_uint8_frames(video: torch.Tensor) -> np.ndarray:
    """(1, C, F, H, W) in [-1, 1] -> (F, H, W, 3) uint8; NaN is an error, not a black video."""
    if torch.isnan(video).any():
        raise NaNOutputError(
            "the model produced NaN: half precision overflowed; try dtype=bf16 or dtype=fp32"
        )
    frames = ((video[0].float() / 2 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8)
    return frames.permute(1, 2, 3, 0).cpu().numpy()  # (F, H, W, C)
