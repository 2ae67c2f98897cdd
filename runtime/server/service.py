"""The server's state and lifecycle, apart from HTTP: configuration, the safety rules for
binding, loading and warming the model per device, the workers, and the health state
(STARTING, READY, BUSY, FAILED with its reason), cog-style."""

from __future__ import annotations

import ipaddress
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from i2vkit import catalogue, request
from i2vkit.errors import ConfigError, ModelLoadError, NotReadyError
from i2vkit.net import is_loopback
from i2vkit.planner import Estimate
from i2vkit.runtime import parallel
from i2vkit.runtime.runner import Facts, plan_on
from i2vkit.runtime.server.executor import WorkerSpec
from i2vkit.runtime.server.metrics import Metrics
from i2vkit.runtime.server.procs import LocalProcess
from i2vkit.runtime.server.store import JobStore
from i2vkit.runtime.server.workers import Backend, Slot, busy, wait_loaded
from i2vkit.settings import Settings
from i2vkit.speed import Speed

log = logging.getLogger("i2vkit.server")


@dataclass(frozen=True)
class ServeConfig:
    app: Settings
    model: str
    host: str = "127.0.0.1"
    port: int = 7860
    preset: str = "preview"  # the page's default preset
    queue_size: int = 16
    token: str | None = None
    insecure: bool = False
    allowed_hosts: tuple[str, ...] = ()  # Host names besides loopback and IP literals
    stay_on_failure: bool = False  # stay up as FAILED instead of exiting non-zero
    devices: tuple[str, ...] = ()  # () = every CUDA GPU, else the CPU
    dtype: str | None = None
    max_upload_bytes: int = 20 * 1024 * 1024
    retention_hours: float = 24.0
    interrupted: str = "retry"  # or "fail": what a restart does with a job a crash interrupted
    max_attempts: int = 2
    warmup: bool = True
    startup_hook: str | None = None  # "module:function", called with each loaded Runner
    cluster: str | None = None  # a Ray cluster's GCS address ("HOST:6379") or "auto"
    parallel: int = 1  # devices per job (runtime/parallel.py)
    parallel_mode: str = "ulysses"
    memory: str = "auto"  # the memory strategy, or 'auto': the planner's for the default preset
    options: Speed = field(default_factory=Speed)  # the accelerations (i2vkit/speed.py)

    @property
    def folder(self) -> Path:
        return self.app.home / "server"

    def __post_init__(self) -> None:
        """Flags out of range are refused here, before anything loads or binds."""
        parallel.check(self.model, self.parallel, self.parallel_mode)
        if self.parallel > 1 and self.cluster:
            raise ConfigError("--parallel runs a job over one node's GPUs; with --cluster each "
                              "Ray actor holds one GPU: use one of the two")  # fmt: skip
        if self.parallel > 1 and (self.options.cache != "none" or self.options.compile):
            raise ConfigError("--parallel with --cache or --compile is not supported (never "
                              "tested together): drop one of them")  # fmt: skip
        if self.cluster:  # an address to read and Ray to read it with, before loading
            from i2vkit.runtime.server.cluster import address, check_ray

            address(self.cluster)
            check_ray()
        if self.cluster and self.devices:
            raise ConfigError("--cluster and --device exclude each other: on a cluster each "
                              "worker takes the GPU Ray gives it")  # fmt: skip
        if self.token is not None and not (
            self.token.isascii()
            and self.token.isprintable()
            and self.token.strip() == self.token != ""
        ):
            raise ConfigError("the API token is blank, has spaces around it or characters "
                              "beyond ASCII: give one of visible ASCII characters (e.g. "
                              "`openssl rand -hex 16`)")  # fmt: skip
        if self.interrupted not in ("retry", "fail"):
            raise ConfigError(f"--interrupted {self.interrupted!r} is unknown; known: retry, fail")
        checks = (("--port", self.port, 1, 65535), ("--queue-size", self.queue_size, 1, 10_000),
                  ("--max-upload-mb", self.max_upload_bytes / 2**20, 0.01, 1024),
                  ("--retention-hours", self.retention_hours, 0, 24 * 365))  # fmt: skip
        for flag, value, low, high in checks:
            if not low <= value <= high:
                raise ConfigError(f"{flag} {value:g} is out of range; allowed: {low:g} to {high:g}")


def check_binding(host: str, token: str | None, insecure: bool) -> None:
    """Loopback by default; anything else needs a token unless --insecure says otherwise."""
    if host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError as error:
            raise ConfigError(f"host {host!r} is not an IP address or 'localhost'") from error
    if not is_loopback(host) and not token and not insecure:
        raise ConfigError(
            f"binding {host} exposes the server beyond this machine: give an API token "
            "(--token or I2VKIT_TOKEN) or, knowingly, --insecure"
        )


def _devices(config: ServeConfig) -> tuple[str, ...]:
    """The devices to start a worker on: those asked for, else every CUDA GPU, else the CPU.
    Counted through NVML, so the API process never initialises CUDA (its workers do)."""
    if config.devices:
        return config.devices
    import os

    os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
    import torch

    if torch.cuda.is_available():
        return tuple(f"cuda:{i}" for i in range(torch.cuda.device_count()))
    return ("cpu",)


def _groups(config: ServeConfig) -> list[tuple[str, ...]]:
    """The devices in groups of --parallel (N CPU ranks where there is no GPU: the tests')."""
    n = config.parallel
    devices = _devices(config)
    if devices == ("cpu",) and not config.devices:
        devices *= n
    if len(devices) % n:
        raise ConfigError(f"--parallel {n} takes the devices {n} at a time; there are "
                          f"{len(devices)}: {','.join(devices)}")  # fmt: skip
    return [devices[i : i + n] for i in range(0, len(devices), n)]


def _threads(groups: list[tuple[str, ...]]) -> int | None:
    """Several processes computing on the CPU share its cores: each gets its share of torch
    threads (measured on 2 cores: two CPU workers at 2 threads each ran half the jobs per
    minute of one, every thread oversubscribed). OMP_NUM_THREADS, when set, decides instead."""
    import os

    ranks = sum(d == "cpu" for group in groups for d in group)
    if ranks < 2 or "OMP_NUM_THREADS" in os.environ:
        return None
    return max(1, (os.cpu_count() or 1) // ranks)


@dataclass
class Service:
    config: ServeConfig
    store: JobStore
    metrics: Metrics = field(default_factory=Metrics)
    slots: list[Slot] = field(default_factory=list)  # the workers (processes or Ray actors)
    state: str = "STARTING"
    reason: str | None = None
    on_failure: Callable[[], None] = lambda: None  # asks the HTTP server to exit
    pool: Any = None  # the Ray cluster's pool (cluster.py), when serving on one
    stopping: threading.Event = field(default_factory=threading.Event)

    @classmethod
    def create(cls, config: ServeConfig) -> Service:
        owner = f"`i2vkit serve` on {config.host}:{config.port}"
        store = JobStore(config.folder, config.queue_size, owner)
        requeued = store.recover(config.interrupted, config.max_attempts)
        if requeued:
            log.warning("recovered %d job(s) a restart interrupted: %s", len(requeued), requeued)
        swept = store.sweep(config.retention_hours * 3600) if config.retention_hours else 0
        if swept:
            log.info("removed %d job(s) older than %g h", swept, config.retention_hours)
        service = cls(config, store)
        store.on_cancel = service._cancel
        return service

    def _cancel(self, job_id: str) -> None:
        for slot in self.slots:
            if slot.current == job_id:
                slot.backend.cancel()

    @property
    def health(self) -> str:
        if self.state != "READY":
            return self.state
        if self.slots and all(s.state in ("failed", "stopped", "blocked") for s in self.slots):
            self.reason = "no worker can run: " + "; ".join(
                f"{s.name}: {s.reason}" for s in self.slots
            )
            return "FAILED"
        return "BUSY" if busy(self.slots) else "READY"

    def spec(self, device: str | None) -> WorkerSpec:
        c = self.config
        return WorkerSpec(c.model, c.app, device, c.dtype, c.memory, c.preset, c.options,
                          c.startup_hook, c.warmup, c.parallel, c.parallel_mode)  # fmt: skip

    def add(self, backend: Backend) -> Slot:
        """A worker for `backend`, started now (it loads in its own thread)."""
        slot = Slot(backend, self.store, self.metrics, f"worker-{len(self.slots)}",
                    self.config.interrupted, self.config.max_attempts)  # fmt: skip
        self.slots.append(slot)
        slot.start()
        return slot

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self._load, name="i2vkit-load", daemon=True)
        thread.start()
        return thread

    def _load(self) -> None:
        try:
            if self.config.cluster:
                from i2vkit.runtime.server.cluster import RayPool

                self.pool = RayPool(self.config.cluster, self)
                self.pool.start()  # a worker per GPU the cluster has; more as GPUs join
            else:
                groups = _groups(self.config)  # one device each, or --parallel's N
                threads = _threads(groups)
                for group in groups:
                    spec = replace(self.spec(group[0]), threads=threads)
                    self.add(LocalProcess(spec, f"worker-{len(self.slots)}", group))
            # on a cluster one loaded worker is a service (an actor may wait for a GPU)
            wait_loaded(list(self.slots), self.stopping, any_one=bool(self.config.cluster))
            failed = [s for s in self.slots if s.state == "failed"]
            if failed and (not self.config.cluster or len(failed) == len(self.slots)):
                raise ModelLoadError("; ".join(f"{s.name}: {s.reason}" for s in failed))
        except Exception as error:  # any failure to load is the server's FAILED reason
            self.state, self.reason = "FAILED", f"{type(error).__name__}: {error}"
            log.error("model %s failed to load: %s", self.config.model, self.reason)
            if not self.config.stay_on_failure:
                self.on_failure()
            return
        if self.stopping.is_set():
            return
        threading.Thread(target=self._sweep, name="i2vkit-retention", daemon=True).start()
        self.state = "READY"
        log.info("READY: %d worker(s), queue size %d", len(self.slots), self.config.queue_size)

    def _sweep(self) -> None:
        """Retention while the server runs, not only at start: every half retention period
        (1 s to 1 h), finished jobs older than --retention-hours are deleted."""
        seconds = self.config.retention_hours * 3600
        if not seconds:  # --retention-hours 0: keep every job
            return
        while not self.stopping.wait(min(max(seconds / 2, 1.0), 3600.0)):
            try:
                swept = self.store.sweep(seconds)
            except Exception:  # a full disk or a closed store: try again next period
                log.exception("retention sweep failed")
                continue
            if swept:
                log.info("removed %d job(s) older than %g h", swept, self.config.retention_hours)

    def stop(self) -> None:
        self.stopping.set()
        if self.pool is not None:
            self.pool.stop_growing()
        for slot in self.slots:
            slot.stop()
        for slot in self.slots:
            slot.join(timeout=20)
        if self.pool is not None:
            self.pool.close()
        self.store.close()

    def facts(self) -> Facts | None:
        """The loaded worker with the most memory for a job, for planning in this process."""
        known = [s.facts for s in self.slots if s.facts is not None and s.state != "failed"]
        return max(known, key=lambda f: f.capacity) if known else None

    def plan(self, s: request.Request) -> Estimate:
        """Refuse (WontFitError) a job no worker could fit, before it is queued."""
        facts = self.facts()
        if facts is None:
            raise NotReadyError(f"not ready: {self.health} (no worker is loaded)")
        return plan_on(facts, s, self.config.app.home)

    def info(self) -> dict[str, Any]:
        facts = self.facts()
        model = catalogue.model(self.config.model)
        return {
            "model": self.config.model,
            # a tiny twin i2vkit built: random weights, its videos are noise (the page says so)
            "random_weights": model.local,
            "model_note": model.note,
            "state": self.health,
            "reason": self.reason,
            "loads": sum(s.facts.loads for s in self.slots if s.facts),
            "devices": [s.facts.device for s in self.slots if s.facts],
            "dtype": facts.dtype if facts else None,
            "options": dict(facts.options) if facts else {},
            "memory": facts.why if facts else None,  # the planner's choice, in words
            "queue": {"depth": self.store.depth(), "size": self.config.queue_size},
            "workers": len(self.slots),
            "cluster": self.pool.describe() if self.pool is not None else None,
            "settings": self.settings(),
        }

    def settings(self) -> dict[str, Any]:
        """What the model takes, for a client's form: sizes in steps of its multiple, frames
        of its step (Wan: 4k+1), its schedulers, its defaults (the page reads this)."""
        model = catalogue.model(self.config.model)
        limits = catalogue.limits()
        return {
            "size_multiple": max(model.size_multiple, limits.size_multiple),
            "size_min": limits.size_min, "size_max": limits.size_max,
            "frames_step": model.frames_step, "frames_min": limits.frames_min,
            "frames_max": model.frames_max or limits.frames_max, "steps_max": limits.steps_max,
            "schedulers": list(model.schedulers), "scheduler": model.scheduler,
            "guidance": model.guidance, "fps": model.fps,
        }  # fmt: skip
