"""What the host is: NVIDIA GPUs through NVML (pynvml), CPU, memory and disk through psutil.

Assumes nothing is installed beyond the light layer: no torch, no CUDA toolkit. Any NVML failure
(no library, driver not loaded, a lost GPU) becomes a CPU-only description with a one-line reason,
never a traceback: a host that cannot be read is still a host doctor must describe.
"""

from __future__ import annotations

import contextlib
import os
import platform
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

# bf16 tensor-core support starts with Ampere (compute capability 8.0); Turing (7.5) and older
# emulate it slowly. Source: NVIDIA Ampere architecture whitepaper; torch.cuda.is_bf16_supported.
BF16_MIN_CAPABILITY = (8, 0)


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    uuid: str
    memory_total: int  # bytes
    memory_free: int  # bytes
    capability: tuple[int, int]  # CUDA compute capability (major, minor)

    @property
    def bf16(self) -> bool:
        return self.capability >= BF16_MIN_CAPABILITY

    @property
    def capability_str(self) -> str:
        return f"{self.capability[0]}.{self.capability[1]}"


@dataclass(frozen=True)
class Nvidia:
    """What NVML says; `gpus` is empty and `reason` says why when there is nothing usable."""

    driver_version: str | None = None
    cuda_version: tuple[int, int] | None = None  # newest CUDA the driver supports
    gpus: tuple[Gpu, ...] = ()
    reason: str | None = None

    @property
    def cuda_version_str(self) -> str | None:
        return None if self.cuda_version is None else "{}.{}".format(*self.cuda_version)


@dataclass(frozen=True)
class Host:
    os: str  # "Linux", "Darwin", "Windows"
    os_release: str  # distribution and version where known, else the kernel release
    arch: str  # "x86_64", "aarch64", ...
    python: tuple[int, int, int]
    cpu_model: str
    cpu_count: int  # logical
    cpu_physical: int | None
    ram_total: int  # bytes
    ram_available: int  # bytes
    disk_path: Path  # where model weights are cached (or its nearest existing parent)
    disk_free: int  # bytes
    nvidia: Nvidia = field(default_factory=Nvidia)


def _describe_nvml_error(error: Exception) -> str:
    import pynvml

    code = getattr(error, "value", None)
    reasons = {
        pynvml.NVML_ERROR_LIBRARY_NOT_FOUND: "no NVIDIA driver (libnvidia-ml.so.1 not found)",
        pynvml.NVML_ERROR_DRIVER_NOT_LOADED: "NVIDIA driver installed but not loaded "
        "(kernel module missing; reboot or run nvidia-smi to see why)",
        pynvml.NVML_ERROR_NO_PERMISSION: "no permission to talk to the NVIDIA driver "
        "(check /dev/nvidia* access)",
        pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH: "NVIDIA driver library and kernel module "
        "versions differ (reboot after the driver upgrade)",
    }
    return reasons.get(code, f"NVML error: {error}")


def detect_nvidia() -> Nvidia:
    """Every GPU NVML reports, with the driver and the CUDA version the driver supports."""
    try:
        import pynvml
    except ImportError:  # the light layer lists nvidia-ml-py; this guards a broken install
        return Nvidia(reason="pynvml is not installed (pip install nvidia-ml-py)")
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as error:
        return Nvidia(reason=_describe_nvml_error(error))
    try:
        return _read_nvml(pynvml)
    except pynvml.NVMLError as error:
        return Nvidia(reason=_describe_nvml_error(error))
    finally:
        with contextlib.suppress(pynvml.NVMLError):
            pynvml.nvmlShutdown()


def _read_nvml(pynvml: Any) -> Nvidia:
    driver = pynvml.nvmlSystemGetDriverVersion()
    cuda = pynvml.nvmlSystemGetCudaDriverVersion_v2()  # e.g. 12040 for CUDA 12.4
    gpus = []
    for index in range(pynvml.nvmlDeviceGetCount()):
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
        gpus.append(
            Gpu(
                index=index,
                name=pynvml.nvmlDeviceGetName(handle),
                uuid=pynvml.nvmlDeviceGetUUID(handle),
                memory_total=int(memory.total),
                memory_free=int(memory.free),
                capability=tuple(pynvml.nvmlDeviceGetCudaComputeCapability(handle)),
            )
        )
    reason = None if gpus else "NVIDIA driver loaded but it reports no GPUs"
    return Nvidia(
        driver_version=driver,
        cuda_version=(cuda // 1000, (cuda % 1000) // 10),
        gpus=tuple(gpus),
        reason=reason,
    )


def _cpu_model() -> str:
    # psutil has no CPU model; /proc/cpuinfo is the Linux source, platform the fallback.
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "Model", "Hardware")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _os_release() -> str:
    try:
        info = platform.freedesktop_os_release()
        return info.get("PRETTY_NAME") or info.get("NAME", "")
    except OSError:
        return f"{platform.system()} {platform.release()}"


def existing_parent(path: Path) -> Path:
    """The path itself or its nearest existing parent (the cache may not exist yet)."""
    path = path.expanduser().absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def detect_host(cache_dir: Path) -> Host:
    """Describe this machine; `cache_dir` is where model weights go (for free disk)."""
    disk_path = existing_parent(cache_dir)
    memory = psutil.virtual_memory()
    return Host(
        os=platform.system(),
        os_release=_os_release(),
        arch=platform.machine(),
        python=(sys.version_info[0], sys.version_info[1], sys.version_info[2]),
        cpu_model=_cpu_model(),
        cpu_count=os.cpu_count() or 1,
        cpu_physical=psutil.cpu_count(logical=False),
        ram_total=memory.total,
        ram_available=memory.available,
        disk_path=disk_path,
        disk_free=psutil.disk_usage(str(disk_path)).free,
        nvidia=detect_nvidia(),
    )
