"""Fault injection for the server tests, loaded by `invoke serve` through I2VKIT_STARTUP_HOOK.

Hooks on the real UNet raise torch.OutOfMemoryError as CUDA would: always for 128x128 jobs
(16x16 latents), once for 192x192 jobs (24x24 latents). Other sizes run normally.
"""

from __future__ import annotations

import torch

_raised_once = False


def _pre_hook(module, args):
    global _raised_once
    side = args[0].shape[-1]
    if side == 16:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 8.00 GiB (injected)")
    if side == 24 and not _raised_once:
        _raised_once = True
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 4.00 GiB (injected)")


def install(runner) -> None:
    runner.loader.get().pipe.unet.register_forward_pre_hook(_pre_hook)


def load_once(runner) -> None:
    """A worker that loads once and never again: the file named by I2VKIT_TEST_LOADED exists
    after the first load, and every later load (a restart) raises."""
    import os
    from pathlib import Path

    marker = Path(os.environ["I2VKIT_TEST_LOADED"])
    if marker.exists():
        raise RuntimeError("injected: this worker loads only once")
    marker.write_text("loaded")
