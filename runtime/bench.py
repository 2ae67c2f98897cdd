"""`i2vkit bench`: the same job through stock diffusers and through i2vkit's tuned runtime, in
one run, same seed, size, frames and steps; per-step and end-to-end time, peak memory, the
ratios, and how far each run is from the FLOP floor (job FLOPs / measured matmul rate).

Stock is what a new user writes from the diffusers docs: fp32 `from_pretrained`, `.to(device)`,
the default call. Under transformers 5 that call raises AttributeError (clip_skip reaches
`text_encoder.text_model`), so stock gets the one-line alias every such user needs, nothing more.
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import torch

from i2vkit import request
from i2vkit.runtime import fullsize
from i2vkit.runtime.loader import (
    choose_device,
    choose_dtype,
    model_folder,
    quiet_libraries,
    torch_dtype,
)
from i2vkit.runtime.measure import PeakMemory
from i2vkit.runtime.pipelines import FAMILIES
from i2vkit.runtime.pipelines.base import Generation
from i2vkit.settings import Settings


@dataclass
class Run:
    name: str
    dtype: str
    seconds: float  # end to end, model already loaded
    step_seconds: float  # median UNet step (CFG batch)
    peak_bytes: int


class StepTimer:
    """Times each UNet forward with hooks on the real module (the same for both runs)."""

    def __init__(self, unet: Any, device: str) -> None:
        self.times: list[float] = []
        self.sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
        self._start = 0.0
        self.handles = [
            unet.register_forward_pre_hook(self._before),
            unet.register_forward_hook(self._after),
        ]

    def _before(self, *_: Any) -> None:
        self.sync()
        self._start = time.perf_counter()

    def _after(self, *_: Any) -> None:
        self.sync()
        self.times.append(time.perf_counter() - self._start)

    def median(self) -> float:
        ordered = sorted(self.times)
        return ordered[len(ordered) // 2] if ordered else 0.0

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()


def _pipeline(app: Settings, model: str, random_weights: bool, device: str) -> Any:
    from diffusers import DiffusionPipeline

    from i2vkit import catalogue

    entry = catalogue.model(model)
    if random_weights and not entry.local:
        if entry.family != "i2vgen-xl":
            raise NotImplementedError("--random-weights is built for i2vgen-xl")
        return fullsize.build_i2vgen_xl(device)
    pipe = DiffusionPipeline.from_pretrained(model_folder(entry, app))  # fp32, as the docs do
    return pipe.to(device)


def _measure(name: str, dtype: str, device: str, unet: Any, call: Any, repeat: int) -> Run:
    """Median of `repeat` timed runs after one warm-up (kernel selection, allocator growth)."""
    call(warmup=True)
    runs = []
    for _ in range(repeat):
        timer = StepTimer(unet, device)
        with PeakMemory(device) as peak:
            start = time.perf_counter()
            call(warmup=False)
            seconds = time.perf_counter() - start
        timer.close()
        runs.append(Run(name, dtype, seconds, timer.median(), peak.peak))
    runs.sort(key=lambda r: r.seconds)
    median = runs[len(runs) // 2]
    return Run(name, dtype, median.seconds, median.step_seconds, max(r.peak_bytes for r in runs))


def run(
    app: Settings,
    model: str,
    s: request.Request,
    image: Any,
    random_weights: bool = False,
    device: str | None = None,
    dtype: str | None = None,
    repeat: int = 3,
    compile_unet: bool = False,
) -> dict[str, Any]:
    quiet_libraries()
    device = choose_device(device)
    tuned_dtype = choose_dtype(device, dtype)
    pipe = _pipeline(app, model, random_weights, device)
    pipe.set_progress_bar_config(disable=True)
    text = pipe.text_encoder
    if text is not None and not hasattr(text, "text_model"):  # the transformers-5 alias
        object.__setattr__(
            text, "text_model", SimpleNamespace(final_layer_norm=text.final_layer_norm)
        )
    flops = fullsize.job_flops(pipe, s)

    def stock(warmup: bool) -> None:
        pipe(
            prompt=s.prompt, image=image, height=s.height, width=s.width, num_frames=s.frames,
            num_inference_steps=1 if warmup else s.steps,
            generator=torch.Generator("cpu").manual_seed(s.seed), output_type="np",
        )  # fmt: skip

    runs = [_measure("stock", "fp32", device, pipe.unet, stock, repeat)]
    pipe.to(dtype=torch_dtype(tuned_dtype))
    if compile_unet:  # measured here first: the runtime adopts it only where it pays
        pipe.unet = torch.compile(pipe.unet)
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()

    def tuned(warmup: bool) -> None:
        FAMILIES["i2vgen-xl"].run(pipe, Generation(s.replace(steps=1) if warmup else s, image))

    name = "i2vkit+compile" if compile_unet else "i2vkit"
    runs.append(_measure(name, tuned_dtype, device, pipe.unet, tuned, repeat))
    rate = fullsize.matmul_rate(device, torch_dtype(tuned_dtype))
    return {
        "model": model, "device": device, "settings": s, "flops": flops, "matmul_rate": rate,
        "floor_seconds": flops["total"] / rate, "runs": runs, "repeat": repeat,
    }  # fmt: skip
