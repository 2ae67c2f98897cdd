"""The accelerations the field uses, as options of a loaded model (applied by runtime/speed.py):

- attention: which kernel runs attention. `sdpa` is torch's scaled_dot_product_attention (what
  diffusers does by default); `auto` picks by GPU architecture among the kernels installed
  (FlashAttention 3 on Hopper, SageAttention on Ada and Ampere, FlashAttention 2), falling back
  to SDPA and saying why; `flash3`, `sage`, `flash` ask for one.
- compile: regional compilation (torch.compile of each repeated transformer block, diffusers'
  `compile_repeated_blocks`): most of a full compile's speed for a fraction of its warm-up.
- cache: `fbcache` skips the rest of the transformer at a step whose first block's output barely
  changed from the previous step (diffusers' FirstBlockCache); `cache_threshold` is how little
  (relative mean absolute change) counts as "barely". Higher skips more and drifts further.

Every one is off by default: each is turned on only once a benchmark on the device shows it pays
(benchmarks/gpu_check.py; figures in docs/benchmarks.md). What was on is recorded with every job.
"""

from __future__ import annotations

from dataclasses import dataclass

from i2vkit.errors import ConfigError

ATTENTION = ("sdpa", "auto", "flash3", "sage", "flash")
CACHES = ("none", "fbcache")
# diffusers' own default for FirstBlockCache; ParaAttention (its origin) suggests 0.05-0.1 for
# video models. Not tuned on the tiny twins: random weights say nothing about quality.
CACHE_THRESHOLD = 0.05


@dataclass(frozen=True)
class Speed:
    attention: str = "sdpa"
    compile: bool = False
    cache: str = "none"
    cache_threshold: float = CACHE_THRESHOLD

    def __post_init__(self) -> None:
        if self.attention not in ATTENTION:
            raise ConfigError(
                f"--attention {self.attention!r} is unknown; known: {', '.join(ATTENTION)}"
            )
        if self.cache not in CACHES:
            raise ConfigError(f"--cache {self.cache!r} is unknown; known: {', '.join(CACHES)}")
        if not 0 < self.cache_threshold < 1:
            raise ConfigError(
                f"--cache-threshold {self.cache_threshold:g} is out of range; allowed: above 0 "
                f"and below 1 (default {CACHE_THRESHOLD:g})"
            )

    def describe(self) -> str:
        parts = [f"attention {self.attention}"]
        if self.compile:
            parts.append("regional compile")
        if self.cache != "none":
            parts.append(f"{self.cache} at {self.cache_threshold:g}")
        return ", ".join(parts)


def parse(attention: str = "sdpa", compile: bool = False, cache: str = "none",
          cache_threshold: float | None = None) -> Speed:  # fmt: skip
    """From command-line flags (invoke passes strings for floats given on the command line)."""
    threshold = CACHE_THRESHOLD if cache_threshold is None else float(cache_threshold)
    return Speed(attention, bool(compile), cache, threshold)
