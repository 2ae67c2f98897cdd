"""The API process's side of the workers: one dispatcher thread per worker (a child process on
this machine, procs.py, or a Ray actor, cluster.py) takes the store's jobs one at a time, hands
each to its worker, streams its progress into the store and records its outcome.

The model never lives in the API process (it never initialises CUDA), so a segfault, a CUDA
error or a SIGKILL takes down one worker, not the server: the job it ran is retried or failed by
the `--interrupted` policy, the worker is started again, and health reports each worker.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable
from typing import Any, Protocol

from i2vkit.runtime.pipelines.base import OnProgress
from i2vkit.runtime.runner import Facts
from i2vkit.runtime.server.executor import Outcome
from i2vkit.runtime.server.metrics import Metrics
from i2vkit.runtime.server.store import Job, JobStore

log = logging.getLogger("i2vkit.worker")

RESTARTS = 3  # a worker that dies and then fails to load this many times in a row stays down


class WorkerLost(Exception):
    """The process or actor that ran a job is gone: killed, crashed, or its node left."""


class Backend(Protocol):
    """Where a worker's model lives: a local child process or a Ray actor."""

    def start(self, stopping: threading.Event) -> Facts:
        """Load the model (blocking); raises on a failed load, WorkerLost on a death."""

    def run(
        self, job: Job, store: JobStore, progress: OnProgress, cancelled: Callable[[], bool]
    ) -> tuple[Outcome, Facts]:
        """The job's outcome, the output written to the store's path; WorkerLost on a death."""

    def cancel(self) -> None:
        """Stop the running job at its next step (from any thread)."""

    def alive(self) -> bool:
        """False once it is known dead (checked between jobs; cheap)."""

    def stop(self) -> None: ...

    def where(self) -> dict[str, Any]:
        """Where it runs, for health: pid, node."""


class Slot(threading.Thread):
    """One worker: loads it, then runs jobs until stopped; restarts it after a death."""

    def __init__(
        self, backend: Backend, store: JobStore, metrics: Metrics, name: str,
        interrupted: str = "retry", max_attempts: int = 2,
    ) -> None:  # fmt: skip
        super().__init__(name=name, daemon=True)
        self.backend = backend
        self.store = store
        self.metrics = metrics
        self.interrupted = interrupted
        self.max_attempts = max_attempts
        self.stopping = threading.Event()
        self.started_once = threading.Event()  # the first load ended, either way
        self.state = "starting"  # starting, ready, busy, restarting, failed, stopped
        self.reason: str | None = None
        self.facts: Facts | None = None
        self.current: str | None = None  # id of the job it runs, if any
        self.deaths = 0
        self.jobs = 0

    def view(self) -> dict[str, Any]:
        f = self.facts
        return {"name": self.name, "state": self.state, "reason": self.reason,
                "job": self.current, "jobs": self.jobs, "deaths": self.deaths,
                "device": f.device if f else None, **self.backend.where()}  # fmt: skip

    def stop(self) -> None:
        """Stop taking jobs and end the worker (its process or actor) now: a job it runs is
        left 'running' in the store, for the next start's recover() to retry or fail."""
        self.stopping.set()
        with self.store.wake:
            self.store.wake.notify_all()
        self.backend.stop()

    def run(self) -> None:
        try:
            if self._load(first=True):
                self._serve()
        finally:
            self.backend.stop()
            if self.state != "failed":
                self.state = "stopped"

    def _load(self, first: bool) -> bool:
        tries = 1 if first else RESTARTS
        for attempt in range(1, tries + 1):
            try:
                self.facts = self.backend.start(self.stopping)
                self.state, self.reason = "ready", None
                self.started_once.set()
                return True
            except Exception as error:
                if self.stopping.is_set():  # stopped while loading: not a failure
                    return False
                self.reason = f"{type(error).__name__}: {error}"
                log.error("%s failed to load (attempt %d of %d): %s", self.name, attempt, tries,
                          self.reason)  # fmt: skip
                self.backend.stop()
                if self.stopping.wait(2.0 * attempt):
                    break
        self.state = "failed"
        self.started_once.set()
        return False

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                if not self._once():
                    return
            except Exception:  # the store failed (a full disk, a read-only folder): go on
                log.exception("%s: a pass of its loop failed; going on in 1 s", self.name)
                self.stopping.wait(1.0)

    def _once(self) -> bool:
        """Run one job, or wait for one; False when the worker cannot go on."""
        if not self.backend.alive():  # died (or fell out of step) between jobs: restart
            self.deaths += 1
            log.error("%s is down between jobs; restarting it", self.name)
            self.state = "restarting"
            return self._load(first=False)
        with self.store.wake:
            job = self.store.claim()
            if job is None:
                self.store.wake.wait(timeout=0.5)
                return True
        self.current, self.state = job.id, "busy"
        s = job.settings
        log.info("job %s started on %s: %dx%d, %d frames, %d steps, seed %d (attempt %d)",
                 job.id, self.name, s.get("height", 0), s.get("width", 0), s.get("frames", 0),
                 s.get("steps", 0), s.get("seed", 0), job.attempts)  # fmt: skip
        try:
            lost = self._execute(job)
        finally:
            self.current = None
            if self.state == "busy":
                self.state = "ready"
        if lost and not self.stopping.is_set():
            self.state = "restarting"
            return self._load(first=False)
        self.metrics.queue_depth.set(self.store.depth())
        return True

    def _execute(self, job: Job) -> bool:
        """Run `job` to an end; True when the worker died under it."""

        def progress(stage: str, done: int, total: int) -> None:
            self.store.update_progress(job.id, stage, done, total)

        try:
            outcome, self.facts = self.backend.run(
                job, self.store, progress, lambda: self.store.cancel_requested(job.id)
            )
        except WorkerLost as lost:
            if self.stopping.is_set():  # the server stops: the job stays for recover()
                return True
            self.deaths += 1  # its facts stay: jobs are still planned for the same device
            status = self.store.interrupt(job.id, self.interrupted, self.max_attempts, str(lost))
            self.metrics.failures.labels("worker_lost").inc()
            log.error("%s lost running job %s: %s; the job is %s; restarting the worker",
                      self.name, job.id, lost, status)  # fmt: skip
            return True
        except Exception as error:  # the transport itself failed, not the job's code
            if self.stopping.is_set():
                return True
            log.exception("%s could not run job %s", self.name, job.id)
            outcome = {"status": "failed", "error": f"internal error: {error}", "cause": "error"}
        self.jobs += 1
        self._record(job, outcome)
        return False

    def _record(self, job: Job, outcome: Outcome) -> None:
        status = outcome["status"]
        if outcome.get("result"):  # where it ran: which worker, which process, which node
            outcome["result"]["worker"] = {"name": self.name, **self.backend.where()}
        if not self._finish(job, outcome):
            return
        took = (outcome.get("result") or {}).get("seconds", {}).get("total")
        log.info("job %s %s on %s%s%s", job.id, status, self.name,
                 f" in {took:.1f} s" if took else "",
                 f": {outcome.get('error')}" if outcome.get("error") else "")  # fmt: skip
        self.metrics.jobs.labels(status).inc()
        if status == "failed":
            self.metrics.failures.labels(outcome.get("cause") or "error").inc()
        result = outcome.get("result") or {}
        for stage, seconds in result.get("seconds", {}).items():
            self.metrics.stage_seconds.labels(stage).observe(seconds)
        if result:
            self.metrics.gpu_memory.labels(result["device"], "peak").set(result["peak_bytes"])

    def _finish(self, job: Job, outcome: Outcome) -> bool:
        """Record the job's end, trying again (1 s, 2 s, ... 30 s) while the store cannot write
        (a full disk): the job must not stay 'running' forever. Meanwhile the worker is
        'blocked', which health counts as unable to run. False when stopped first."""
        wait = 1.0
        while True:
            try:
                error, cause = outcome.get("error"), outcome.get("cause")
                self.store.finish(job.id, outcome["status"], result=outcome.get("result"),
                                  error=error, cause=cause)  # fmt: skip
            except (OSError, sqlite3.Error) as failure:  # the disk, not the record: wait
                self.state, self.reason = "blocked", f"cannot record job {job.id}: {failure}"
                log.error("%s: %s; trying again in %.0f s", self.name, self.reason, wait)
                if self.stopping.wait(wait):
                    return False
                wait = min(wait * 2, 30.0)
                continue
            if self.state == "blocked":
                self.state, self.reason = "busy", None
            return True


def busy(slots: list[Slot]) -> bool:
    """Every worker that can run is running a job."""
    able = [s for s in slots if s.state in ("ready", "busy")]
    return bool(able) and all(s.state == "busy" for s in able)


def wait_loaded(slots: list[Slot], stopping: threading.Event, any_one: bool = False) -> None:
    """Until each slot's first load ended (`any_one`: until one loaded, or all ended), or
    `stopping`."""
    while not stopping.is_set():
        ended = [s for s in slots if s.started_once.is_set()]
        if len(ended) == len(slots) or (any_one and any(s.facts for s in ended)):
            return
        stopping.wait(0.5)
