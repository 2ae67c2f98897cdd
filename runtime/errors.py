"""The runtime's expected outcomes that are not successes: each is a job's result, never a crash."""

from __future__ import annotations

from collections.abc import Iterable

from i2vkit.errors import I2VKitError


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
