"""What the API says about time and size before a job runs: when a full queue has room
(Retry-After), a queued job's place and wait, each preset's fit, memory and expected time, and
the warnings a 202 carries. Durations come from this server's own recent jobs."""

from __future__ import annotations

import logging
import time
from typing import Any

from i2vkit import catalogue, request
from i2vkit.errors import JobNotFoundError, WontFitError
from i2vkit.runtime.runner import plan_on
from i2vkit.runtime.server.service import ServeConfig, Service
from i2vkit.runtime.server.store import Job

log = logging.getLogger("i2vkit.server")


def retry_after(service: Service, mean: float | None = None) -> int:
    """Seconds until the queue has room: when the first running job should end (its ETA, or
    the recent `mean` duration less what it ran), not the time to drain the whole queue."""
    mean = mean or mean_seconds(service) or 10.0
    now, ends = time.time(), []
    for slot in service.slots:
        job_id = slot.current
        progress = service.store.progress.get(job_id) if job_id else None
        eta = progress.eta() if progress else None
        if eta is not None:
            ends.append(eta)
        elif job_id:
            try:
                started = service.store.get(job_id).started or now
            except JobNotFoundError:  # it ended (and was deleted) meanwhile
                continue
            # past its expected end: a quarter of a job more, not "retry in 1 s" forever
            ends.append(max(mean - (now - started), mean / 4))
    return max(1, int(min(ends) + 0.999) if ends else int(mean + 0.999))


def place(service: Service, job: Job) -> dict[str, Any]:
    """A queued job's place (1: next to start) and its expected wait: it starts when the
    first running job ends, plus a mean job's time for each round of the jobs ahead of it
    beyond one per worker. None until a job has succeeded (no duration to go by)."""
    ahead = service.store.ahead(job.id)
    able = max(1, sum(s.state in ("ready", "busy") for s in service.slots))
    mean = mean_seconds(service)
    wait = None
    if mean is not None:
        rounds = (ahead - able) // able
        wait = 0.0 if ahead < able else round(retry_after(service, mean) + mean * rounds, 1)
    return {"position": ahead + 1, "wait_seconds": wait}


def mean_seconds(service: Service) -> float | None:
    done = [j for j in service.store.recent(20) if j.status == "succeeded" and j.result]
    if not done:
        return None
    return sum(j.result["seconds"]["total"] for j in done if j.result) / len(done)


def presets(service: Service, config: ServeConfig) -> list[dict[str, Any]]:
    """Every preset with whether it fits the device the jobs run on, and why; its expected
    time (from this server's recent jobs, scaled by pixels x frames x steps) and a warning
    where it would be slow or is not meant for the device (the CPU runs `preview` only, as
    `i2vkit doctor` says: the README's `entry` took 19 min on 2 cores)."""
    out = []
    facts = service.facts()
    rate = seconds_per_unit(service)
    for p in catalogue.presets():
        s = request.make(config.model, p.name)  # the model's own numbers for the preset
        entry: dict[str, Any] = {"name": p.name, "height": s.height, "width": s.width,
                                 "frames": s.frames, "steps": s.steps}  # fmt: skip
        entry["fits"], entry["reason"], entry["warning"] = True, "", ""
        entry["strategy"], entry["estimate_gib"] = None, None
        entry["seconds_estimate"] = round(rate * units(s), 1) if rate else None
        if facts:
            entry["strategy"] = facts.strategy  # the weights are placed at load
            try:
                estimate = plan_on(facts, s, config.app.home)
                entry["estimate_gib"] = round(estimate.peak / 2**30, 2)
            except WontFitError as error:
                entry["fits"], entry["reason"] = False, str(error)
            if facts.device == "cpu" and not p.cpu:
                entry["warning"] = f"{p.name} is not meant for a CPU (use preview)"
        seconds = entry["seconds_estimate"]
        if seconds and seconds > 120:
            slow = f"about {seconds / 60:.0f} min a video here"
            entry["warning"] = f"{entry['warning']}; {slow}" if entry["warning"] else slow
        entry["default"] = p.name == config.preset
        out.append(entry)
    return out


def slow(service: Service, s: request.Request) -> list[str]:
    """What a client should know before it waits: a job far past the CPU's size (the README's
    `preset=entry` curl took 19 min on 2 cores), or one expected to take minutes here."""
    facts, warnings = service.facts(), []
    preview = request.make(s.model, "preview")
    if facts and facts.device == "cpu" and units(s) > units(preview):
        warnings.append(f"this job runs on a CPU, where only jobs the size of preview "
                        f"({preview.height}x{preview.width}, {preview.frames} frames, "
                        f"{preview.steps} steps) are practical")  # fmt: skip
    rate = seconds_per_unit(service)
    if rate and rate * units(s) > 120:
        warnings.append(f"expected to take about {rate * units(s) / 60:.0f} min here")
    for warning in warnings:
        log.warning("job for %dx%d, %d frames, %d steps: %s", s.height, s.width, s.frames,
                    s.steps, warning)  # fmt: skip
    return warnings


def units(s: request.Request) -> int:
    return s.height * s.width * s.frames * s.steps


def seconds_per_unit(service: Service) -> float | None:
    """Seconds per pixel x frame x step of this server's recent succeeded jobs (median)."""
    rates = sorted(
        j.result["seconds"]["total"] / units(request.Request.model_validate(j.settings))
        for j in service.store.recent(20) if j.status == "succeeded" and j.result
    )  # fmt: skip
    return rates[len(rates) // 2] if rates else None
