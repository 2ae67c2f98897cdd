"""Peak memory of a stretch of work: CUDA's allocator statistics on a GPU, sampled process RSS
on the CPU (psutil; torch's CPU allocator keeps no statistics)."""

from __future__ import annotations

import threading
from types import TracebackType

import psutil


class PeakMemory:
    """`with PeakMemory(device) as m: ...` then `m.peak` (bytes above the start on CPU, the
    allocator's peak on CUDA) and `m.stage_peaks` filled by `mark(stage)`."""

    def __init__(self, device: str, interval: float = 0.005) -> None:
        self.device = device
        self.interval = interval
        self.peak = 0
        self.stage_peaks: dict[str, int] = {}
        self._stage = "start"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._base = 0

    @property
    def cuda(self) -> bool:
        return self.device.startswith("cuda")

    def _current(self) -> int:
        if self.cuda:
            import torch

            return int(torch.cuda.max_memory_allocated(self.device))
        return int(psutil.Process().memory_info().rss) - self._base

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self._record()

    def _record(self) -> None:
        value = self._current()
        self.peak = max(self.peak, value)
        self.stage_peaks[self._stage] = max(self.stage_peaks.get(self._stage, 0), value)

    def mark(self, stage: str) -> None:
        """Start attributing peaks to `stage` (on CUDA the allocator's peak is reset)."""
        if stage == self._stage:
            return
        self._record()
        self._stage = stage
        if self.cuda:
            import torch

            torch.cuda.reset_peak_memory_stats(self.device)

    def __enter__(self) -> PeakMemory:
        if self.cuda:
            import torch

            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self._base = int(psutil.Process().memory_info().rss)
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.cuda:
            import torch

            torch.cuda.synchronize(self.device)
        self._stop.set()
        if self._thread:
            self._thread.join()
        self._record()


def device_memory(device: str) -> tuple[int, int]:
    """(free, total) bytes on `device`: torch.cuda.mem_get_info on CUDA, psutil on CPU."""
    if device.startswith("cuda"):
        import torch

        free, total = torch.cuda.mem_get_info(torch.device(device))
        return int(free), int(total)
    import psutil

    memory = psutil.virtual_memory()
    return int(memory.available), int(memory.total)
