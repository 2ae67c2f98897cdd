"""Applying i2vkit/speed.py's options to a loaded pipeline with diffusers' own machinery: the
attention dispatcher (`set_attention_backend`), regional compilation (`compile_repeated_blocks`)
and the cache hooks (`enable_cache` with FirstBlockCacheConfig). Each returns what it actually
did, in words, for the job record: an asked-for kernel that is not installed falls back to SDPA
and says so; it never fails the load. A cache or compile option the model's denoiser cannot take
is refused before loading (`refusals`), never turned off in silence.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from i2vkit.errors import ConfigError
from i2vkit.runtime.memory import denoisers
from i2vkit.speed import Speed

# i2vkit's names -> diffusers' AttentionBackendName values, and the module each needs
BACKENDS = {"sdpa": "native", "flash3": "_flash_3", "sage": "sage", "flash": "flash"}
NEEDS = {"flash3": "flash_attn_interface", "sage": "sageattention", "flash": "flash_attn"}


def installed(name: str) -> bool:
    return importlib.util.find_spec(NEEDS[name]) is not None if name in NEEDS else True


def choose_attention(asked: str, device: str, capability: tuple[int, int] | None,
                     have: dict[str, bool]) -> tuple[str, str]:  # fmt: skip
    """(i2vkit backend name, why). `auto` ranks by what each architecture runs best: FA3 is
    Hopper-only (sm90); SageAttention's INT8/FP8 kernels pay on Ada and Ampere; FA2 anywhere
    from Ampere. CPUs run SDPA."""
    if not device.startswith("cuda") or capability is None:
        return "sdpa", "CPU: torch SDPA"
    if asked == "sdpa":
        return "sdpa", "asked for (torch SDPA)"
    if asked != "auto":
        if have.get(asked, False):
            return asked, "asked for"
        return "sdpa", f"{asked} asked for but {NEEDS[asked]} is not installed: torch SDPA"
    ranked = [("flash3", capability[0] == 9), ("sage", capability >= (8, 0)),
              ("flash", capability >= (8, 0))]  # fmt: skip
    for name, suits in ranked:
        if suits and have.get(name, False):
            return name, f"auto: best installed kernel for sm{capability[0]}{capability[1]}"
    missing = ", ".join(NEEDS[n] for n, suits in ranked if suits) or "none suits this GPU"
    return "sdpa", f"auto: no faster kernel installed ({missing}): torch SDPA"


def _capability(device: str) -> tuple[int, int] | None:
    import torch

    if not device.startswith("cuda"):
        return None
    major, minor = torch.cuda.get_device_capability(torch.device(device))
    return int(major), int(minor)


def set_attention(pipe: Any, asked: str, device: str) -> str:
    have = {name: installed(name) for name in NEEDS}
    name, why = choose_attention(asked, device, _capability(device), have)
    if name == "sdpa":
        return f"sdpa ({why})"
    try:
        for model in denoisers(pipe).values():
            model.set_attention_backend(BACKENDS[name])
    except (RuntimeError, ValueError) as error:  # a kernel that imports but cannot run here
        for model in denoisers(pipe).values():
            model.set_attention_backend("native")
        return f"sdpa ({name} failed to set: {str(error).splitlines()[0][:160]})"
    return f"{name} ({why})"


def enable_cache(pipe: Any, speed: Speed) -> str:
    if speed.cache == "none":
        return "off"
    from diffusers import FirstBlockCacheConfig

    for model in denoisers(pipe).values():  # `refusals` turned away a model without the hooks
        model.enable_cache(FirstBlockCacheConfig(threshold=speed.cache_threshold))
    return f"first-block cache at {speed.cache_threshold:g}"


def compile_blocks(pipe: Any, on: bool) -> str:
    """Regional compilation of every denoiser's repeated blocks. Where diffusers' hooks sit in
    the blocks (the cache hook, fp8 layerwise casting, group offloading), their wrappers are
    not traceable whole: the blocks then compile with graph breaks at the hooks (fullgraph
    off) instead of failing; otherwise as whole graphs."""
    if not on:
        return "off"
    models = denoisers(pipe).values()  # each names its repeated blocks (`refusals` checked)
    blocks, hooked = set(), False
    for model in models:
        whole = not _hooked(model)
        hooked = hooked or not whole
        model.compile_repeated_blocks(fullgraph=whole)
        blocks.update(model._repeated_blocks)
    return f"regional ({', '.join(sorted(blocks))})" + (", graph breaks at hooks" if hooked else "")


def _hooked(model: Any) -> bool:
    """Whether diffusers' hooks wrap any module of `model` (they live in `_diffusers_hook`)."""
    return any(getattr(m, "_diffusers_hook", None) is not None for m in model.modules())


def refusals(model_name: str, speed: Speed) -> list[str]:
    """Why an asked-for option cannot apply to the model's denoiser, one sentence each naming
    the fix; empty when every one applies. Read from diffusers' own classes, so a diffusers
    release that adds support lifts the refusal. Checked before anything loads: an option is
    refused, never silently ignored."""
    import diffusers

    from i2vkit import catalogue
    from i2vkit.runtime.pipelines import family

    entry = catalogue.model(model_name)
    if speed.cache == "none" and not speed.compile:
        return []  # nothing asked that a denoiser could refuse
    name = family(entry.family).denoiser
    if not name:
        raise ConfigError(
            f"family {entry.family!r} names no denoiser class (its FAMILY's `denoiser`): "
            "cannot tell which accelerations apply"
        )
    cls = getattr(diffusers, name)
    out = []
    if speed.cache != "none":
        why = _no_cache(cls)
        if why:
            out.append(f"--cache {speed.cache} does not apply to {entry.name}: {why}; "
                       f"use --cache none")  # fmt: skip
    if speed.compile and not getattr(cls, "_repeated_blocks", None):
        out.append(f"--compile does not apply to {entry.name}: {name} names no repeated blocks "
                   f"for regional compilation; leave --compile off")  # fmt: skip
    return out


def _no_cache(cls: Any) -> str:
    """Why diffusers' FirstBlockCache cannot hook `cls`, or "" when it can: the class needs the
    cache mixin, and its block class must be registered with the hooks (they find each block's
    outputs through that registry)."""
    import sys

    from diffusers.hooks._helpers import TransformerBlockRegistry

    if not hasattr(cls, "enable_cache"):
        return f"{cls.__name__} has no cache hooks (diffusers writes them for transformers)"
    module = sys.modules[cls.__module__]
    for block in getattr(cls, "_repeated_blocks", None) or ():
        block_cls = getattr(module, block, None)
        if block_cls is None or not block.endswith("Block"):
            continue
        try:
            TransformerBlockRegistry.get(block_cls)
        except ValueError:
            return (f"{block} is not registered with diffusers' cache hooks "
                    f"(diffusers {diffusers_version()})")  # fmt: skip
    return ""


def diffusers_version() -> str:
    from importlib.metadata import version

    return version("diffusers")


def apply(pipe: Any, speed: Speed, device: str) -> dict[str, str]:
    """Turn the options on; returns what each ended up as, for the job record. Compile goes
    last: it traces the blocks as the other options left them."""
    return {
        "attention": set_attention(pipe, speed.attention, device),
        "cache": enable_cache(pipe, speed),
        "compile": compile_blocks(pipe, speed.compile),
    }


class Calls:
    """Counts a pipeline's denoiser forwards and how many of them ran their last block: the
    difference is what a cache hook skipped. (A skipped block is still *called*, its hook
    returning the cached residual, so the count is taken one module deeper: the last block's
    feed-forward only runs when the block computes.)"""

    def __init__(self, pipe: Any) -> None:
        self.total = 0
        self.computed = 0
        self._handles = []
        for model in denoisers(pipe).values():
            inner = _last_block_inner(model)
            self._handles.append(model.register_forward_pre_hook(self._count_total))
            self._handles.append(inner.register_forward_pre_hook(self._count_computed))

    def _count_total(self, *_: Any) -> None:
        self.total += 1

    def _count_computed(self, *_: Any) -> None:
        self.computed += 1

    @property
    def skipped(self) -> int:
        return self.total - self.computed

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()


def _last_block_inner(model: Any) -> Any:
    """A module that runs only when the model computes its last block: the last transformer
    block's feed-forward; a UNet's last up block (no cache hook skips UNet blocks)."""
    blocks = getattr(model, "blocks", None) or getattr(model, "transformer_blocks", None)
    if blocks:
        block = blocks[-1]
        return getattr(block, "ffn", None) or getattr(block, "ff", None) or block
    up = getattr(model, "up_blocks", None)
    return up[-1] if up else model


def blocks(model: Any) -> list[Any]:
    """The model's repeated blocks: a transformer's, or a UNet's down, mid and up blocks."""
    found = getattr(model, "blocks", None) or getattr(model, "transformer_blocks", None)
    if found:
        return list(found)
    mid = getattr(model, "mid_block", None)
    return [*getattr(model, "down_blocks", ()), *([mid] if mid else []),
            *getattr(model, "up_blocks", ())]  # fmt: skip
