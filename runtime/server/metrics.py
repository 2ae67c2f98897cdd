"""Prometheus metrics for the server: queue depth, job durations by stage, failures by cause,
GPU memory. A registry per app (not the global one) so several servers can live in one process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

STAGE_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.queue_depth = Gauge(
            "i2vkit_queue_depth", "Jobs queued or running", registry=self.registry
        )
        self.jobs = Counter(
            "i2vkit_jobs_total", "Finished jobs by status", ["status"], registry=self.registry
        )
        self.failures = Counter(
            "i2vkit_job_failures_total", "Failed jobs by cause", ["cause"], registry=self.registry
        )
        self.stage_seconds = Histogram(
            "i2vkit_job_stage_seconds", "Time per job stage", ["stage"],
            buckets=STAGE_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.gpu_memory = Gauge(
            "i2vkit_device_memory_bytes", "Device memory by kind (free, total, peak of last job)",
            ["device", "kind"], registry=self.registry,
        )  # fmt: skip
