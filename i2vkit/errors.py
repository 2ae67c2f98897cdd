"""Every error i2vkit raises on purpose: one base, and each subclass also inherits the matching
built-in (so `except KeyError` still works) and carries its data.

Messages name the bad value and the next step. They are plain sentences; formatting for a
terminal or an HTTP body happens at the edge (i2vkit/cli, runtime/server/http.py), which asks
`exit_code()` and `http_status()` (the table at the end) what each error means there.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any


class I2VKitError(Exception):
    """Base of every error i2vkit raises on purpose."""


class _Sentence:
    """For errors whose built-in base (KeyError, OSError, LookupError) would otherwise quote or
    reformat the message."""

    def __str__(self) -> str:
        return str(self.args[0])  # type: ignore[attr-defined]


# --- what the user gave: flags, settings, names, files ----------------------------------------


class ConfigError(I2VKitError, ValueError):
    """A setting, flag or data file has a value i2vkit cannot use."""


class UnknownNameError(_Sentence, I2VKitError, KeyError):
    """A name (model, preset, mirror, variant) is not in its catalogue."""

    def __init__(self, kind: str, name: str, known: Iterable[str]) -> None:
        self.kind = kind
        self.name = name
        self.known = tuple(sorted(known))
        super().__init__(f"{kind} {name!r} is unknown; known: {', '.join(self.known)}")


class RequestError(I2VKitError, ValueError):
    """A generation setting is out of bounds; the message names it and the allowed range."""


# --- this machine: programs, ports ----------------------------------------------------------


class ToolMissingError(_Sentence, I2VKitError, FileNotFoundError):
    """A program i2vkit runs is not installed where it looks (see i2vkit/tools.py)."""

    def __init__(self, tool: str, why: str, fix: str) -> None:
        self.tool, self.why, self.fix = tool, why, fix
        super().__init__(f"{tool} is missing: {why}; install it: {fix}")


class PortBusyError(_Sentence, I2VKitError, OSError):
    """An address i2vkit must listen on is taken."""

    def __init__(
        self, host: str, port: int, cause: str,
        fix: str = "choose another port with --port, or stop what listens there",
    ) -> None:  # fmt: skip
        self.host, self.port = host, port
        super().__init__(f"cannot listen on {host}:{port}: {cause}; {fix}")


# --- mirrors, environments, weights --------------------------------------------------------


class InstallError(I2VKitError, RuntimeError):
    """Every mirror in the chain failed, or the install failed for a reason no mirror fixes;
    `result` says which attempt failed and why."""

    def __init__(self, result: Any) -> None:
        self.result = result  # the room's result (attempts per mirror, what came from where)
        super().__init__("; ".join(result.summary()))


class CondaInstallError(InstallError):
    """No mirror could install the conda layer, or it failed for a reason a mirror cannot fix."""


LOCK_FIX = (
    "run `i2vkit lock` (where conda-forge or a mirror of it is reachable) and commit the result"
)


class LockfileMissingError(_Sentence, I2VKitError, FileNotFoundError):
    """The conda lockfile does not exist."""

    def __init__(self, path: Path) -> None:
        self.path = path
        super().__init__(f"conda lockfile {path} does not exist; {LOCK_FIX}")


class PlatformNotLockedError(_Sentence, I2VKitError, LookupError):
    """The lockfile holds no packages for the host's platform."""

    def __init__(self, path: Path, platform: str, locked: Sequence[str], spec: str) -> None:
        self.path, self.platform, self.locked = path, platform, tuple(locked)
        super().__init__(
            f"conda lockfile {path} has no packages for platform {platform!r} (it locks: "
            f"{', '.join(self.locked) or 'nothing'}); add {platform} under `platforms:` in "
            f"{spec} and {LOCK_FIX}"
        )


class SolveError(I2VKitError, RuntimeError):
    """A lock could not be computed: the spec does not solve against the indexes or channels."""


class EnvCheckError(I2VKitError, RuntimeError):
    """A freshly built env fails its check (conflicting requirements, an import that fails): it
    is not swapped in."""


class EnvMissingError(_Sentence, I2VKitError, FileNotFoundError):
    """A runtime task needs the env `i2vkit setup` builds, and there is none."""


class WeightsError(I2VKitError, RuntimeError):
    """No endpoint could provide the model's files, or they fail their check."""


# --- images -----------------------------------------------------------------------------------


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


class ContainerStartError(I2VKitError, RuntimeError):
    """The engine could not start the image (no GPU runtime for --gpus, say)."""


# --- the runtime: models and jobs -------------------------------------------------------------


class ModelNotReadyError(_Sentence, I2VKitError, FileNotFoundError):
    """The model's files are not on disk (setup has not run)."""


class ModelLoadError(I2VKitError, RuntimeError):
    """The model's files are there but did not load as asked (a component in the wrong dtype)."""


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


# --- the server -------------------------------------------------------------------------------


class QueueFullError(I2VKitError, RuntimeError):
    """The server's bounded queue has no room; retry after `retry_after` seconds."""

    def __init__(self, size: int, retry_after: int) -> None:
        self.retry_after = retry_after
        super().__init__(f"the queue is full ({size} jobs); retry in {retry_after} s")


class JobNotFoundError(_Sentence, I2VKitError, KeyError):
    """No job has that id (or the id is not one i2vkit could have made)."""

    def __init__(self, job_id: str) -> None:
        super().__init__("no such job")
        self.job_id = job_id


class NotReadyError(I2VKitError, RuntimeError):
    """The server takes no work yet (STARTING) or any more (FAILED)."""


class StoreBusyError(I2VKitError, RuntimeError):
    """Another server owns the job store (one server per I2VKIT_HOME)."""

    def __init__(self, folder: object, owner: str) -> None:
        self.folder, self.owner = folder, owner
        super().__init__(
            f"the job store {folder} belongs to a running server ({owner or 'owner unknown'}): "
            "stop it first, or give this server its own I2VKIT_HOME"
        )


# --- what each error means at the edges -------------------------------------------------------

# Exit codes: 2 when what was asked for is wrong (fix the command), 1 when it could not be done
# (fix the machine, the network, or try later). HTTP: the request's fault is 4xx, ours 5xx.
_MEANINGS: tuple[tuple[type[I2VKitError], int, int], ...] = (
    (JobNotFoundError, 2, 404),
    (QueueFullError, 1, 429),
    (NotReadyError, 1, 503),
    (WontFitError, 2, 422),
    (RequestError, 2, 422),
    (UnknownNameError, 2, 422),
    (ConfigError, 2, 422),
    (I2VKitError, 1, 500),
)


def _meaning(error: I2VKitError) -> tuple[int, int]:
    return next((code, status) for kind, code, status in _MEANINGS if isinstance(error, kind))


def exit_code(error: I2VKitError) -> int:
    return _meaning(error)[0]


def http_status(error: I2VKitError) -> int:
    return _meaning(error)[1]
