"""Decisions from the host, each with its reason and the source of every fact it used.

Which torch wheel variant fits the driver and GPUs, which tier and presets the host runs, and
what is missing. Pure functions of a `Host` and the data files: no I/O, so tests feed them any
host. Which presets fit comes from the memory planner's estimate for the model
(runtime/planner.py), not from fixed VRAM thresholds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from packaging.version import Version

from i2vkit.catalogue import Model, Preset, TorchVariant, TorchVariants
from i2vkit.errors import UnknownNameError
from i2vkit.host import Gpu, Host

GIB = 1024**3
MIN_PYTHON = (3, 10)  # pyproject.toml's requires-python
DISK_MARGIN = 1.10  # weights plus 10% for temp files during download and the HF cache's refs


@dataclass(frozen=True)
class Fact:
    name: str
    value: str
    source: str  # where the value came from: "nvml", "psutil", a data file row, ...


@dataclass(frozen=True)
class Decision:
    value: str
    reason: str
    facts: tuple[Fact, ...] = ()


@dataclass(frozen=True)
class PresetFit:
    preset: str
    gpu: int | None  # None: the CPU
    fits: bool
    reason: str
    strategy: str | None = None  # the memory strategy it would run with, when it fits a GPU


@dataclass(frozen=True)
class TierDecision:
    tier: str
    reason: str
    presets: tuple[str, ...]  # presets the host can run on its best device
    fits: tuple[PresetFit, ...]  # every preset on every device, with the reason


def _driver(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split(".") if p.isdigit())


def _cap(text: str) -> tuple[int, int]:
    major, minor = text.split(".")
    return int(major), int(minor)


def covers(variant: TorchVariant, gpu: Gpu) -> bool:
    """A wheel runs on a GPU if it holds SASS for the same major and an equal or lower minor:
    cubins are binary-compatible within a major version (CUDA C Programming Guide, 'Binary
    Compatibility'); 8.6 code runs on 8.9, nothing from 9.0 runs on 12.0."""
    major, minor = gpu.capability
    return any(a[0] == major and a[1] <= minor for a in map(_cap, variant.archs))


def _offered(variant: TorchVariant, torch: str) -> bool:
    if variant.name == "cpu":
        return False
    release = Version(torch)
    if Version(variant.first_torch) > release:
        return False
    return not variant.last_torch or Version(variant.last_torch) >= release


def choosable(table: TorchVariants) -> tuple[str, ...]:
    """The variants that ship the pinned torch: cpu and every CUDA variant offered for it."""
    return ("cpu", *(v.name for v in table.variant if _offered(v, table.torch)))


def variant_for(asked: str, table: TorchVariants, host: Callable[[], Host]) -> Decision:
    """`--cuda`: 'auto' asks `choose_torch_variant` about the host (detected only then); a name
    must be a variant that ships the pinned torch (a retired cu118 would fail only at install)."""
    if asked == "auto":
        return choose_torch_variant(host(), table)
    known = choosable(table)
    if asked not in known:
        raise UnknownNameError("cuda variant", asked, ("auto", *known))
    return Decision(asked, "asked for with --cuda")


def _experimental(variant: TorchVariant, torch: str) -> bool:
    return bool(variant.experimental_below) and Version(torch) < Version(variant.experimental_below)


def _driver_gate(host: Host, table: TorchVariants) -> str | None:
    """Why the driver cannot run one of the host's GPU families at all, if so."""
    nvidia = host.nvidia
    assert nvidia.driver_version is not None
    for gpu in nvidia.gpus:
        # the row of the GPU's major version with the highest minor not above the GPU's
        rows = [r for r in table.arch_driver if _cap(r.capability)[0] == gpu.capability[0]]
        rows = [r for r in rows if _cap(r.capability) <= gpu.capability]
        for row in sorted(rows, key=lambda r: _cap(r.capability))[-1:]:
            if _driver(nvidia.driver_version) < _driver(row.min_driver_linux):
                return (
                    f"GPU {gpu.index} {gpu.name} (compute {gpu.capability_str}, {row.family}) "
                    f"needs NVIDIA driver >= {row.min_driver_linux}; driver "
                    f"{nvidia.driver_version} is too old: upgrade the driver"
                )
    return None


def choose_torch_variant(host: Host, table: TorchVariants) -> Decision:
    """The torch wheel variant for this host: the newest the driver supports natively, else the
    closest it runs through CUDA minor-version compatibility; every GPU must be covered."""
    nvidia = host.nvidia
    if not nvidia.gpus or nvidia.cuda_version is None or nvidia.driver_version is None:
        why = Fact("nvidia", nvidia.reason or "no NVIDIA GPU", "nvml")
        return Decision("cpu", "no usable NVIDIA GPU: the CPU build of torch", (why,))
    facts = (
        Fact("driver", nvidia.driver_version, "nvml: nvmlSystemGetDriverVersion"),
        Fact("driver CUDA", nvidia.cuda_version_str or "", "nvml: nvmlSystemGetCudaDriverVersion"),
        Fact("torch", table.torch, "runtime/data/torch_variants.toml"),
    )
    gate = _driver_gate(host, table)
    if gate:
        return Decision("cpu", f"{gate}; until then: the CPU build of torch", facts)
    # newest CUDA first; experimental variants after every stable one
    offered = sorted(
        (v for v in table.variant if _offered(v, table.torch)),
        key=lambda v: (not _experimental(v, table.torch), _cap(v.cuda)),
        reverse=True,
    )
    covering = [v for v in offered if all(covers(v, g) for g in nvidia.gpus)]
    if not covering:
        caps = ", ".join(sorted({g.capability_str for g in nvidia.gpus}))
        return Decision(
            "cpu",
            f"no torch {table.torch} wheel ({', '.join(v.name for v in offered)}) has kernels "
            f"for compute capability {caps}: the CPU build of torch",
            facts,
        )
    driver_cuda = nvidia.cuda_version
    assert driver_cuda is not None
    native = [v for v in covering if _cap(v.cuda) <= driver_cuda]
    if native:
        chosen = native[0]
        how = f"the newest torch {table.torch} wheel that driver runs natively"
    else:
        compat = [
            v
            for v in reversed(covering)
            if _cap(v.cuda)[0] == driver_cuda[0]
            and _driver(nvidia.driver_version) >= _driver(v.min_driver_linux_compat)
        ]
        if not compat:
            oldest = covering[-1]
            return Decision(
                "cpu",
                f"driver {nvidia.driver_version} supports CUDA {nvidia.cuda_version_str}, older "
                f"than every torch {table.torch} CUDA wheel "
                f"({', '.join(v.name for v in covering)}); upgrade the driver to "
                f">= {oldest.min_driver_linux} for {oldest.name}; "
                "until then: the CPU build of torch",
                facts,
            )
        chosen = compat[0]
        how = (
            f"the closest torch {table.torch} wheel it runs, through CUDA minor-version "
            f"compatibility (driver >= {chosen.min_driver_linux_compat}); driver >= "
            f"{chosen.min_driver_linux} would run it natively"
        )
    caps = ", ".join(f"{g.capability_str}" for g in nvidia.gpus)
    reason = (
        f"driver {nvidia.driver_version} supports CUDA {nvidia.cuda_version_str}; "
        f"{chosen.name} (CUDA {chosen.cuda}) is {how}; its kernels ({', '.join(chosen.archs)}) "
        f"cover compute {caps}"
    )
    row = Fact(chosen.name, chosen.index_url, f"runtime/data/torch_variants.toml: {chosen.source}")
    return Decision(chosen.name, reason, (*facts, row))


def fit_presets(host: Host, presets: tuple[Preset, ...], model: str = "i2vgen-xl") -> TierDecision:
    """Which presets each device runs, by the memory planner's estimate for `model` at the
    device's dtype (bf16 or fp16), and the host's tier (its best device's)."""
    from i2vkit import planner

    gpus = host.nvidia.gpus
    if not gpus:
        fits = tuple(
            PresetFit(p.name, None, p.cpu, "runs on CPU (slowly)" if p.cpu else "needs a GPU")
            for p in presets
        )
        names = tuple(f.preset for f in fits if f.fits)
        return TierDecision("cpu", "no usable NVIDIA GPU: CPU-only", names, fits)
    tiers = {p.name: p.tier for p in presets}
    fits_list: list[PresetFit] = []
    best: tuple[float, Gpu, tuple[str, ...], str] | None = None
    for gpu in gpus:
        gib = gpu.memory_total / GIB
        dtype = "bf16" if gpu.bf16 else "fp16"
        mine = []
        for name, ok, est in planner.preset_fits(model, "cuda", dtype, gpu.memory_total):
            verb = "has" if ok else "has only"
            source = est.source.split(":")[0]
            how = est.strategy.describe() if ok else f"even with {est.strategy.describe()}"
            reason = (f"{model} needs about {est.peak / GIB:.1f} GiB in {dtype}, {how} "
                      f"({source}); GPU {gpu.index} {verb} {gib:.1f} GiB")  # fmt: skip
            fits_list.append(
                PresetFit(name, gpu.index, ok, reason, est.strategy.name if ok else None)
            )
            if ok:
                mine.append(name)
        tier = tiers[mine[-1]] if mine else "cpu"
        if best is None or gib > best[0]:
            best = (gib, gpu, tuple(mine), tier)
    assert best is not None
    gib, gpu, names, tier = best
    if not names:
        reason = f"the largest GPU ({gpu.name}, {gib:.1f} GiB) fits no preset of {model}: CPU-only"
        return TierDecision("cpu", reason, tuple(p.name for p in presets if p.cpu),
                            tuple(fits_list))  # fmt: skip
    reason = (f"GPU {gpu.index} {gpu.name} has {gib:.1f} GiB, enough for {model}'s "
              f"{names[-1]} preset by the memory planner's estimate")  # fmt: skip
    return TierDecision(tier, reason, names, tuple(fits_list))


def check_host(host: Host, model: Model) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(problems, warnings): problems make doctor exit non-zero."""
    problems: list[str] = []
    warnings: list[str] = []
    if host.python[:2] < MIN_PYTHON:
        have = ".".join(map(str, host.python))
        problems.append(
            f"Python {have} is too old; i2vkit needs >= {'.'.join(map(str, MIN_PYTHON))}: "
            "install a newer Python (e.g. `uv python install 3.11`)"
        )
    need = int(model.download_bytes * DISK_MARGIN)
    if host.disk_free < need:
        problems.append(
            f"{host.disk_path} has {host.disk_free / GIB:.1f} GiB free; model {model.name!r} "
            f"needs {need / GIB:.1f} GiB: free space there or set HF_HUB_CACHE to a larger disk"
        )
    if host.ram_total < model.download_bytes * 2:
        warnings.append(
            f"{host.ram_total / GIB:.1f} GiB RAM is tight for loading {model.name!r} "
            f"({model.download_bytes / GIB:.1f} GiB of weights)"
        )
    for gpu in host.nvidia.gpus:
        used = gpu.memory_total - gpu.memory_free
        if used > 0.25 * gpu.memory_total:
            warnings.append(
                f"GPU {gpu.index} has {used / GIB:.1f} of {gpu.memory_total / GIB:.1f} GiB "
                "in use by other processes"
            )
    return tuple(problems), tuple(warnings)
