"""One base error for the project; each subclass also inherits the matching built-in.

Messages name the bad value and the next step. They are plain sentences; formatting for a
terminal happens at the edge (tasks.py), never here.
"""

from __future__ import annotations

from collections.abc import Iterable


class I2VKitError(Exception):
    """Base of every error i2vkit raises on purpose."""


class ConfigError(I2VKitError, ValueError):
    """A setting, flag or data file has a value i2vkit cannot use."""


class UnknownNameError(I2VKitError, KeyError):
    """A name (model, preset, mirror, variant) is not in its catalogue."""

    def __init__(self, kind: str, name: str, known: Iterable[str]) -> None:
        self.kind = kind
        self.name = name
        self.known = tuple(sorted(known))
        super().__init__(f"{kind} {name!r} is unknown; known: {', '.join(self.known)}")

    def __str__(self) -> str:  # KeyError would otherwise quote the whole message
        return str(self.args[0])


class HostRequirementError(I2VKitError, RuntimeError):
    """The host lacks something required (disk, Python version, ...)."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(self.problems))


class ToolMissingError(I2VKitError, FileNotFoundError):
    """A program i2vkit runs is not installed where it looks (see i2vkit/tools.py)."""

    def __init__(self, tool: str, why: str, fix: str) -> None:
        self.tool, self.why, self.fix = tool, why, fix
        super().__init__(f"{tool} is missing: {why}; install it: {fix}")

    def __str__(self) -> str:
        return str(self.args[0])


class StoreBusyError(I2VKitError, RuntimeError):
    """Another server owns the job store (one server per I2VKIT_HOME)."""

    def __init__(self, folder: object, owner: str) -> None:
        self.folder, self.owner = folder, owner
        super().__init__(
            f"the job store {folder} belongs to a running server ({owner or 'owner unknown'}): "
            "stop it first, or give this server its own I2VKIT_HOME"
        )


class PortBusyError(I2VKitError, OSError):
    """The address the server should listen on is taken."""

    def __init__(self, host: str, port: int, cause: str) -> None:
        self.host, self.port = host, port
        super().__init__(
            f"cannot listen on {host}:{port}: {cause}; choose another port with --port, or stop "
            "what listens there"
        )

    def __str__(self) -> str:
        return str(self.args[0])


class ModelNotReadyError(I2VKitError, FileNotFoundError):
    """The model's files are not on disk (setup has not run)."""


class RequestError(I2VKitError, ValueError):
    """A generation setting is out of bounds; the message names it and the allowed range."""


class WontFitError(I2VKitError, MemoryError):
    """The memory planner predicts the job would run out of memory; `fits` are settings that would
    fit (each a short human phrase, e.g. 'height=512, width=512')."""

    def __init__(self, message: str, fits: Iterable[str] = ()) -> None:
        self.fits = tuple(fits)
        tail = f"; settings that fit: {' | '.join(self.fits)}" if self.fits else ""
        super().__init__(message + tail)


class OutOfMemoryError(I2VKitError, MemoryError):
    """The device ran out of memory even after the safer retry."""


class NaNOutputError(I2VKitError, ArithmeticError):
    """The model produced NaN (half-precision overflow, usually)."""


class CancelledError(I2VKitError):
    """The job was cancelled; raised at the next denoising step."""


class EngineUnreachableError(I2VKitError, ConnectionError):
    """No Docker engine answers where the client looked."""

    def __init__(self, where: str, how: str, cause: str) -> None:
        self.where = where
        self.cause = cause
        super().__init__(
            f"no Docker engine answers at {where} ({how}): start the daemon "
            "(`sudo systemctl start docker`, or `dockerd &`), or point DOCKER_HOST at a running "
            f"one (e.g. DOCKER_HOST=unix:///path/to/docker.sock or ssh://user@host); {cause}"
        )


class BuildError(I2VKitError, RuntimeError):
    """The image build failed at a step; `step` is the Dockerfile step that failed."""

    def __init__(self, message: str, step: str | None = None) -> None:
        self.step = step
        where = f" at {step!r}" if step else ""
        super().__init__(f"the build failed{where}: {message}")


class PushError(I2VKitError, RuntimeError):
    """The registry refused or could not take the image."""


class QueueFullError(I2VKitError, RuntimeError):
    """The server's bounded queue has no room; retry after `retry_after` seconds."""

    def __init__(self, size: int, retry_after: int) -> None:
        self.retry_after = retry_after
        super().__init__(f"the queue is full ({size} jobs); retry in {retry_after} s")


class JobNotFoundError(I2VKitError, KeyError):
    """No job has that id (or the id is not one i2vkit could have made)."""

    def __str__(self) -> str:
        return "no such job"
