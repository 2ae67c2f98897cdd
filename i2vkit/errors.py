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
