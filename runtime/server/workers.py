"""A worker owns one loaded pipeline (one per GPU) and runs the store's jobs one at a time.

Every way a job can end is an outcome recorded on the job (succeeded, cancelled, failed with a
cause); none of them stops the worker, so the server stays healthy after an OOM or a bad job.
"""

from __future__ import annotations

import logging
import threading
import traceback

from i2vkit import request
from i2vkit.errors import (
    CancelledError,
    NaNOutputError,
    OutOfMemoryError,
    RequestError,
    WontFitError,
)
from i2vkit.runtime.runner import Runner
from i2vkit.runtime.server.metrics import Metrics
from i2vkit.runtime.server.store import Job, JobStore

log = logging.getLogger("i2vkit.worker")

CAUSES: tuple[tuple[type[BaseException], str], ...] = (
    (OutOfMemoryError, "oom"),
    (WontFitError, "wont_fit"),
    (NaNOutputError, "nan"),
    (RequestError, "invalid"),
)


class Worker(threading.Thread):
    def __init__(self, runner: Runner, store: JobStore, metrics: Metrics, name: str) -> None:
        super().__init__(name=name, daemon=True)
        self.runner = runner
        self.store = store
        self.metrics = metrics
        self.stopping = threading.Event()
        self.current: str | None = None  # id of the job it runs, if any

    def stop(self) -> None:
        self.stopping.set()
        with self.store.wake:
            self.store.wake.notify_all()

    def run(self) -> None:
        while not self.stopping.is_set():
            with self.store.wake:
                job = self.store.claim()
                if job is None:
                    self.store.wake.wait(timeout=0.5)
                    continue
            self.current = job.id
            try:
                self.execute(job)
            finally:
                self.current = None
                self.metrics.queue_depth.set(self.store.depth())

    def execute(self, job: Job) -> None:
        from PIL import Image

        settings = request.Request.model_validate(job.settings)
        try:
            with Image.open(self.store.input_path(job.id)) as picture:
                image = picture.convert("RGB")
            result = self.runner.generate(
                settings,
                image,
                self.store.output_path(job.id),
                progress=lambda stage, done, total: self.store.update_progress(
                    job.id, stage, done, total
                ),
                cancelled=lambda: self.store.cancel_requested(job.id),
            )
        except CancelledError:
            self.store.finish(job.id, "cancelled", error="cancelled while running")
            self.metrics.jobs.labels("cancelled").inc()
            log.info("job %s cancelled", job.id)
            return
        except Exception as error:
            self._fail(job, error)
            return
        summary = {
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
        }
        self.store.finish(job.id, "succeeded", result=summary)
        self.metrics.jobs.labels("succeeded").inc()
        for stage, seconds in result.seconds.items():
            self.metrics.stage_seconds.labels(stage).observe(seconds)
        self.metrics.gpu_memory.labels(result.device, "peak").set(result.peak_bytes)
        stages = ", ".join(f"{k} {v:.2f}" for k, v in result.seconds.items() if k != "total")
        log.info(
            "job %s succeeded in %.2f s (%s); %dx%d, %d frames, %d steps; peak %.2f GiB on %s %s",
            job.id, result.seconds["total"], stages, settings.height, settings.width,
            settings.frames, settings.steps, result.peak_bytes / 1024**3, result.device,
            result.dtype,
        )  # fmt: skip

    def _fail(self, job: Job, error: Exception) -> None:
        cause = next((c for kind, c in CAUSES if isinstance(error, kind)), "error")
        message = str(error) if cause != "error" else f"internal error: {error}"
        if cause == "error":
            log.error("job %s failed:\n%s", job.id, traceback.format_exc())
        else:
            log.warning("job %s failed (%s): %s", job.id, cause, error)
        self.store.output_path(job.id).unlink(missing_ok=True)
        self.store.finish(job.id, "failed", error=message, cause=cause)
        self.metrics.jobs.labels("failed").inc()
        self.metrics.failures.labels(cause).inc()


def busy(workers: list[Worker]) -> bool:
    return bool(workers) and all(w.current is not None for w in workers)
