"""What runs where the model lives: in a worker process on this machine (workers.py) or in a Ray
actor on a cluster node (cluster.py). It loads the model once, warms it, and turns every job
into an outcome: a plain dict (succeeded with its record, cancelled, or failed with a cause),
so that no error of a job ever ends the process that runs it.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import logging
import tempfile
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from i2vkit import files, request
from i2vkit.errors import (
    CancelledError,
    ConfigError,
    NaNOutputError,
    OutOfMemoryError,
    RequestError,
    WontFitError,
)
from i2vkit.runtime.pipelines.base import OnProgress
from i2vkit.runtime.runner import Runner
from i2vkit.settings import Settings
from i2vkit.speed import Speed

log = logging.getLogger("i2vkit.worker")

CAUSES: tuple[tuple[type[BaseException], str], ...] = (
    (OutOfMemoryError, "oom"),
    (WontFitError, "wont_fit"),
    (NaNOutputError, "nan"),
    (RequestError, "invalid"),
)

# a full disk, a quota, a file-size limit, a read-only folder: the job fails as `storage`
STORAGE = (*files.DISK_FULL, errno.EROFS, errno.EACCES)
Outcome = dict[str, Any]  # {"status": "succeeded", "result": {...}} | cancelled | failed


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker needs to load the model: plain values, pickled into a child process or a
    Ray actor. `device` None: the worker's own choice (cuda:0 of the GPU Ray gave it, else
    the CPU)."""

    model: str
    app: Settings
    device: str | None = None
    dtype: str | None = None
    memory: str = "auto"
    preset: str = "preview"  # the strategy is chosen for jobs of this preset's size
    options: Speed = field(default_factory=Speed)
    startup_hook: str | None = None  # "module:function", called with the loaded Runner
    warmup: bool = True
    parallel: int = 1  # processes (devices) per job: runtime/parallel.py
    parallel_mode: str = "ulysses"
    threads: int | None = None  # torch's CPU threads; None: torch's default (every core)


def prepare(spec: WorkerSpec) -> None:
    """Build a tiny twin's files (and its LoRA's) if they are not there yet. A group's ranks
    call this before joining their group: transformers' save_pretrained writes no weights on
    a rank other than 0 once torch.distributed is up (distributed/mixin.py
    `should_save_on_this_rank`), so a twin built after would be a folder without weights."""
    from i2vkit import catalogue
    from i2vkit.runtime.loader import model_folder

    model = catalogue.model(spec.model)
    if model.local:
        model_folder(model, spec.app)
        if model.lora:
            model_folder(catalogue.lora_files(model), spec.app)


def load(spec: WorkerSpec, group: Any = None) -> Runner:
    """The loaded, warmed runner; with a `group` (runtime/parallel.py), its denoiser split
    over the group's ranks, every rank loading and warming alike."""
    from i2vkit.runtime import parallel
    from i2vkit.runtime.loader import Loader

    if spec.threads:
        import torch

        torch.set_num_threads(spec.threads)
    sized = request.make(spec.model, spec.preset)
    loader = Loader(spec.model, spec.app, spec.device, spec.dtype, spec.memory, sized,
                    spec.options)  # fmt: skip
    runner = Runner(loader, spec.app)
    loaded = runner.setup()
    log.info("loaded %s on %s (%s) in %.1f s; memory: %s", spec.model, loaded.device,
             loaded.dtype, loaded.seconds, loaded.why)  # fmt: skip
    if group is not None:
        runner.refuse = group.rank == 0
        runner.retry = False
        loaded.options["parallel"] = parallel.apply(loaded.pipe, spec.parallel_mode, group,
                                                    loaded.device)  # fmt: skip
    if spec.startup_hook:
        _call_hook(spec.startup_hook, runner)
    if spec.warmup:
        _warm(runner, spec)
    return runner


def _warm(runner: Runner, spec: WorkerSpec) -> None:
    """Two steps at the default preset's size, so the first user's job does not pay for
    kernel selection and allocator growth at those shapes (measured: the first jobs after
    a 64x64 warm-up ran 10-30% slower). A preset that does not fit (and a group) warms at
    preview."""
    from i2vkit.runtime.pictures import gradient_picture

    s = request.make(spec.model, spec.preset, steps=2)
    # a group's ranks must all warm the same size, not each the size its own plan allows
    if spec.parallel > 1 or not _fits(runner, s):
        s = request.make(spec.model, "preview", steps=2)
    with tempfile.TemporaryDirectory() as tmp:
        picture = gradient_picture(s.height, s.width)
        result = runner.generate(s, picture, Path(tmp) / "warmup.mp4")
    log.info("warm-up took %.2f s", result.seconds["total"])


def _fits(runner: Runner, s: request.Request) -> bool:
    try:
        runner.plan(s)
    except WontFitError:
        return False
    return True


def _call_hook(spec: str, runner: Runner) -> None:
    """Run a user's `module:function(runner)` after loading: custom attention processors,
    compile flags, or a test's fault injection on the real modules."""
    module_name, _, function = spec.partition(":")
    if not function:
        raise ConfigError(f"startup hook {spec!r} is not 'module:function'")
    getattr(importlib.import_module(module_name), function)(runner)


def execute(
    runner: Runner, job_id: str, settings: dict[str, Any], image: Any, out: Path,
    progress: OnProgress, cancelled: Callable[[], bool],
) -> Outcome:  # fmt: skip
    """Run one job to its outcome; `out` holds the video only when it succeeded. `image`: the
    picture, or the path of the store's copy of it."""
    try:
        s = request.Request.model_validate(settings)
        if isinstance(image, Path):
            image = _open(image)
        result = runner.generate(s, image, out, progress=progress, cancelled=cancelled)
    except CancelledError:
        log.info("job %s cancelled", job_id)
        return {"status": "cancelled", "error": "cancelled while running"}
    except Exception as error:
        return _failed(job_id, error, out)
    stages = ", ".join(f"{k} {v:.2f}" for k, v in result.seconds.items() if k != "total")
    log.info(
        "job %s succeeded in %.2f s (%s); %dx%d, %d frames, %d steps; peak %.2f GiB on %s %s",
        job_id, result.seconds["total"], stages, s.height, s.width, s.frames, s.steps,
        result.peak_bytes / 1024**3, result.device, result.dtype,
    )  # fmt: skip
    return {"status": "succeeded", "result": {
        "frames": result.frames,
        "seconds": {k: round(v, 3) for k, v in result.seconds.items()},
        "peak_bytes": result.peak_bytes,
        "estimate_bytes": result.estimate.peak,
        "device": result.device,
        "dtype": result.dtype,
        "retried": result.retried,
        "frames_sha256": result.frames_sha256,
        "options": result.options,
        "warnings": result.warnings,
        "settings": result.request.model_dump(),
    }}  # fmt: skip


def refusal(runner: Runner, job_id: str, settings: dict[str, Any], out: Path) -> Outcome | None:
    """The failed outcome of a job the planner (or the request's checks) refuses; None when
    it may run."""
    try:
        runner.plan(request.Request.model_validate(settings))
    except Exception as error:
        return _failed(job_id, error, out)
    return None


def _open(path: Path) -> Any:
    from PIL import Image

    with Image.open(path) as picture:
        return picture.convert("RGB")


def _failed(job_id: str, error: Exception, out: Path) -> Outcome:
    cause = next((c for kind, c in CAUSES if isinstance(error, kind)), "error")
    message = str(error) if cause != "error" else f"internal error: {error}"
    if isinstance(error, OSError) and error.errno in STORAGE:
        cause = "storage"
        message = (f"the video could not be written ({error.strerror}): free space in the "
                   f"server's folder {out.parent.parent} and submit it again")  # fmt: skip
    if cause == "error":
        log.error("job %s failed:\n%s", job_id, traceback.format_exc())
    else:
        log.warning("job %s failed (%s): %s", job_id, cause, error)
    with contextlib.suppress(OSError):  # a read-only folder must not turn a failure into a crash
        out.unlink(missing_ok=True)
    return {"status": "failed", "error": message, "cause": cause}
