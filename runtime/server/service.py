"""The server's state and lifecycle, apart from HTTP: configuration, the safety rules for
binding, loading and warming the model per device, the workers, and the health state
(STARTING, READY, BUSY, FAILED with its reason), cog-style."""

from __future__ import annotations

import importlib
import ipaddress
import logging
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from i2vkit import catalogue, request
from i2vkit.errors import ConfigError
from i2vkit.net import is_loopback
from i2vkit.runtime.loader import Loader
from i2vkit.runtime.runner import Runner
from i2vkit.runtime.server.metrics import Metrics
from i2vkit.runtime.server.store import JobStore
from i2vkit.runtime.server.workers import Worker, busy
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
    stay_on_failure: bool = False  # stay up as FAILED instead of exiting non-zero
    devices: tuple[str, ...] = ()  # () = every CUDA GPU, else the CPU
    dtype: str | None = None
    max_upload_bytes: int = 20 * 1024 * 1024
    retention_hours: float = 24.0
    interrupted: str = "retry"  # or "fail": what a restart does with a job a crash interrupted
    max_attempts: int = 2
    warmup: bool = True
    startup_hook: str | None = None  # "module:function", called with each loaded Runner
    memory: str = "auto"  # the memory strategy, or 'auto': the planner's for the default preset
    options: Speed = field(default_factory=Speed)  # the accelerations (i2vkit/speed.py)

    @property
    def folder(self) -> Path:
        return self.app.home / "server"

    def __post_init__(self) -> None:
        """Flags out of range are refused here, before anything loads or binds."""
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
    if config.devices:
        return config.devices
    import torch

    if torch.cuda.is_available():
        return tuple(f"cuda:{i}" for i in range(torch.cuda.device_count()))
    return ("cpu",)


@dataclass
class Service:
    config: ServeConfig
    store: JobStore
    metrics: Metrics = field(default_factory=Metrics)
    runners: list[Runner] = field(default_factory=list)
    workers: list[Worker] = field(default_factory=list)
    state: str = "STARTING"
    reason: str | None = None
    on_failure: Callable[[], None] = lambda: None  # asks the HTTP server to exit

    @classmethod
    def create(cls, config: ServeConfig) -> Service:
        owner = f"`i2vkit serve` on {config.host}:{config.port}"
        store = JobStore(config.folder, config.queue_size, owner)
        requeued = store.recover(config.interrupted, config.max_attempts)
        if requeued:
            log.warning("recovered %d job(s) a restart interrupted: %s", len(requeued), requeued)
        swept = store.sweep(config.retention_hours * 3600)
        if swept:
            log.info("removed %d job(s) older than %g h", swept, config.retention_hours)
        return cls(config, store)

    @property
    def health(self) -> str:
        if self.state == "READY" and busy(self.workers):
            return "BUSY"
        return self.state

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self._load, name="i2vkit-load", daemon=True)
        thread.start()
        return thread

    def _load(self) -> None:
        try:
            for device in _devices(self.config):
                sized = request.make(self.config.model, self.config.preset)
                loader = Loader(self.config.model, self.config.app, device, self.config.dtype,
                                self.config.memory, sized, self.config.options)  # fmt: skip
                runner = Runner(loader, self.config.app)
                loaded = runner.setup()
                log.info("loaded %s on %s (%s) in %.1f s; memory: %s", self.config.model,
                         loaded.device, loaded.dtype, loaded.seconds, loaded.why)  # fmt: skip
                if self.config.startup_hook:
                    _call_hook(self.config.startup_hook, runner)
                if self.config.warmup:
                    self._warm(runner)
                self.runners.append(runner)
        except Exception as error:  # any failure to load is the server's FAILED reason
            self.state, self.reason = "FAILED", f"{type(error).__name__}: {error}"
            log.error("model %s failed to load: %s", self.config.model, self.reason)
            if not self.config.stay_on_failure:
                self.on_failure()
            return
        for i, runner in enumerate(self.runners):
            worker = Worker(runner, self.store, self.metrics, f"worker-{i}")
            worker.start()
            self.workers.append(worker)
        self.state = "READY"
        log.info("READY: %d worker(s), queue size %d", len(self.workers), self.config.queue_size)

    def _warm(self, runner: Runner) -> None:
        """Two steps at the default preset's size, so the first user's job does not pay for
        kernel selection and allocator growth at those shapes (measured: the first jobs after
        a 64x64 warm-up ran 10-30% slower). A preset that does not fit warms at preview."""
        from i2vkit.errors import WontFitError
        from i2vkit.runtime.pictures import gradient_picture

        s = request.make(self.config.model, self.config.preset, steps=2)
        try:
            runner.plan(s)
        except WontFitError:
            s = request.make(self.config.model, "preview", steps=2)
        with tempfile.TemporaryDirectory() as tmp:
            picture = gradient_picture(s.height, s.width)
            result = runner.generate(s, picture, Path(tmp) / "warmup.mp4")
        log.info("warm-up took %.2f s", result.seconds["total"])

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()
        for worker in self.workers:
            worker.join(timeout=5)
        self.store.close()

    def info(self) -> dict[str, Any]:
        first = self.runners[0].loader if self.runners else None
        loaded = first._loaded if first else None
        return {
            "model": self.config.model,
            "state": self.health,
            "reason": self.reason,
            "loads": sum(r.loader.loads for r in self.runners),
            "devices": [r.loader.get().device for r in self.runners],
            "dtype": loaded.dtype if loaded else None,
            "options": dict(loaded.options) if loaded else {},
            "memory": loaded.why if loaded else None,  # the planner's choice, in words
            "queue": {"depth": self.store.depth(), "size": self.config.queue_size},
            "workers": len(self.workers),
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


def _call_hook(spec: str, runner: Runner) -> None:
    """Run a user's `module:function(runner)` after loading: custom attention processors,
    compile flags, or a test's fault injection on the real modules."""
    module_name, _, function = spec.partition(":")
    if not function:
        raise ConfigError(f"startup hook {spec!r} is not 'module:function'")
    getattr(importlib.import_module(module_name), function)(runner)
