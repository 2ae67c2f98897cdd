"""The runtime: one loaded pipeline, driven by one job at a time, with the memory planner before
each job and one safer retry after an out-of-memory error. An OOM is an expected outcome with
its own error; the process stays healthy.
"""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from i2vkit import planner, request
from i2vkit.errors import OutOfMemoryError, RequestError
from i2vkit.request import Request
from i2vkit.runtime.loader import Loaded, Loader
from i2vkit.runtime.measure import PeakMemory, device_memory
from i2vkit.runtime.pipelines import FAMILIES
from i2vkit.runtime.pipelines.base import Generation, OnProgress
from i2vkit.runtime.video import write_mp4
from i2vkit.settings import Settings


@dataclass
class Result:
    path: Path
    request: Request
    frames: int
    seconds: dict[str, float]  # per stage: encode, denoise, decode, write, total
    peak_bytes: int
    estimate: planner.Estimate
    device: str
    dtype: str
    retried: bool = False
    warnings: list[str] = field(default_factory=list)
    options: dict[str, str] = field(default_factory=dict)  # what was on: memory strategy, ...
    # sha256 of the frames as generated (uint8, (F, H, W, 3)), before encoding: the same seed
    # and settings give the same digest. The mp4's bytes may differ: x264 does not always
    # encode the same frames the same way (tests/runtime/test_generation.py)
    frames_sha256: str = ""


@dataclass(frozen=True)
class Facts:
    """What a loaded worker tells the API process, which plans each job without touching the
    device (it never initialises CUDA): plain values, so they cross a pipe or Ray unchanged."""

    model: str
    device: str
    dtype: str
    strategy: str  # planner.STRATEGIES' name
    why: str  # the planner's reason for it, in words
    options: dict[str, str]
    free: int  # the device's free memory when the worker last looked
    capacity: int  # bytes a job may use: free plus the resident weights
    total: int  # the device's memory
    loads: int = 1


def plan_on(facts: Facts, s: Request, home: Path | None) -> planner.Estimate:
    """Refuse (WontFitError) a job that would not fit the worker `facts` describe."""
    if s.model != facts.model:
        raise RequestError(f"model {s.model!r} is not the loaded {facts.model!r}")
    profile = planner.profile_for(s.model, facts.device, facts.dtype, home)
    options = planner.candidates(facts.device)
    return planner.check(s, profile, facts.capacity, planner.strategy(facts.strategy), options)


class _Stages:
    """Times each stage from the progress callbacks and passes them on."""

    def __init__(self, forward: OnProgress, meter: PeakMemory) -> None:
        self.forward = forward
        self.meter = meter
        self.seconds: dict[str, float] = {}
        self._stage = ""
        self._since = time.perf_counter()

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage != self._stage:
            now = time.perf_counter()
            if self._stage:
                self.seconds[self._stage] = self.seconds.get(self._stage, 0) + now - self._since
            self._stage, self._since = stage, now
            self.meter.mark(stage)
        if stage:
            self.forward(stage, done, total)

    def close(self) -> None:
        self("", 0, 0)


def _is_oom(error: BaseException) -> bool:
    import torch

    return isinstance(error, torch.OutOfMemoryError)


def _free_device_memory() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class Runner:
    """Owns the loader and the lock that keeps the pipeline to one job at a time."""

    def __init__(self, loader: Loader, app: Settings) -> None:
        self.loader = loader
        self.app = app
        self._busy = threading.Lock()
        # a --parallel group's ranks must take the same path through every job: only rank 0
        # may refuse (its plan decides for the group) and none retries an OOM on its own
        self.refuse = True
        self.retry = True

    def setup(self) -> Loaded:
        return self.loader.get()

    def options(self) -> dict[str, str]:
        """What the loaded pipeline runs with, recorded on every result."""
        return dict(self.loader.get().options)

    def facts(self) -> Facts:
        loaded = self.loader.get()
        profile = planner.profile_for(loaded.model.name, loaded.device, loaded.dtype,
                                      self.app.home)  # fmt: skip
        free, total = device_memory(loaded.device)
        # the resident weights are already in place, so they are not in `free`: count them back
        resident = planner.resident_weights(loaded.model, profile, loaded.strategy)
        return Facts(loaded.model.name, loaded.device, loaded.dtype, loaded.strategy.name,
                     loaded.why, dict(loaded.options), free, free + resident, total,
                     self.loader.loads)  # fmt: skip

    def _estimate(self, s: Request) -> planner.Estimate:
        loaded = self.loader.get()
        profile = planner.profile_for(s.model, loaded.device, loaded.dtype, self.app.home)
        return planner.estimate(s, profile, loaded.strategy)

    def plan(self, s: Request) -> planner.Estimate:
        """Refuse (WontFitError) before anything runs if the job would not fit."""
        return plan_on(self.facts(), s, self.app.home)

    def generate(
        self,
        s: Request,
        image: Any,
        out: Path,
        progress: OnProgress | None = None,
        cancelled: Callable[[], bool] = lambda: False,
    ) -> Result:
        estimate = self.plan(s) if self.refuse else self._estimate(s)
        loaded = self.loader.get()
        run = FAMILIES[loaded.model.family].run
        started = time.perf_counter()
        with self._busy, PeakMemory(loaded.device) as meter:
            stages = _Stages(progress or (lambda *_: None), meter)
            job = Generation(s, image, stages, cancelled)
            retried = False
            try:
                frames = run(loaded.pipe, job)
            except Exception as error:
                if not _is_oom(error) or not self.retry:
                    raise
                frames, job = self._retry_safer(loaded, job, run)
                retried = True
            stages("write", 0, 1)
            write_mp4(frames, out, fps=job.request.fps, audio=job.audio)
            stages("write", 1, 1)
            stages.close()
        seconds = {**stages.seconds, "total": time.perf_counter() - started}
        return Result(
            path=out,
            request=job.request,
            frames=int(frames.shape[0]),
            seconds=seconds,
            peak_bytes=meter.peak,
            estimate=estimate,
            device=loaded.device,
            dtype=loaded.dtype,
            retried=retried,
            warnings=request.quality_warnings(s),
            options=self.options(),
            frames_sha256=hashlib.sha256(np.ascontiguousarray(frames).tobytes()).hexdigest(),
        )

    def _retry_safer(
        self, loaded: Loaded, job: Generation, run: Callable[[Any, Generation], Any]
    ) -> tuple[Any, Generation]:
        """One retry after an OOM: cached memory freed, one frame decoded at a time, tiled VAE."""
        _free_device_memory()
        safer = dataclasses.replace(job, request=job.request.replace(decode_chunk=1))
        vae = loaded.pipe.vae
        # turned on for the retry only: a VAE the load tiled (the lean strategy, LTX, LTX-2,
        # HunyuanVideo 1.5) stays tiled for the jobs after it
        tiling = hasattr(vae, "enable_tiling") and not getattr(vae, "use_tiling", False)
        if tiling:
            vae.enable_tiling()
        try:
            return run(loaded.pipe, safer), safer
        except Exception as error:
            if not _is_oom(error):
                raise
            _free_device_memory()
            s = job.request
            raise OutOfMemoryError(
                f"out of memory at {s.height}x{s.width}, {s.frames} frames even with "
                "decode_chunk=1 and a tiled VAE: lower the resolution or the frame count"
            ) from error
        finally:
            if tiling:
                vae.disable_tiling()
