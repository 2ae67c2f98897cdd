"""The images room's errors: each names what failed and the next step."""

from __future__ import annotations

from i2vkit.errors import I2VKitError


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
