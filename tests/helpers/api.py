"""Small client helpers for the server tests (plain HTTP through httpx)."""

from __future__ import annotations

import io
import json
import time

import httpx
from PIL import Image


def png(width: int = 96, height: int = 64, mode: str = "RGB") -> bytes:
    image = Image.new(mode, (width, height), (200, 80, 40) if mode == "RGB" else 0)
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


SMALL = {"height": "64", "width": "64", "frames": "4", "steps": "3"}


def submit(url: str, image: bytes | None = None, headers: dict | None = None, **fields: str):
    data = {**SMALL, **fields}
    files = {"image": ("in.png", image if image is not None else png(), "image/png")}
    return httpx.post(f"{url}/v1/jobs", data=data, files=files, headers=headers, timeout=30)


def until(check, what: str, timeout: float = 60, every: float = 0.05):
    """Poll `check()` until it returns something truthy (returned); a bounded wait whose
    failure says what never happened."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(every)
    raise TimeoutError(f"{what} did not happen within {timeout:g} s")


def running(url: str, job_id: str, step: int = 2, timeout: float = 120) -> dict:
    """The job once its progress reached `step`: it is mid-run."""

    def at_step() -> dict | None:
        job = httpx.get(f"{url}/v1/jobs/{job_id}", timeout=10).json()
        return job if job.get("progress", {}).get("step", 0) >= step else None

    return until(at_step, f"job {job_id} at step {step}", timeout=timeout)


def workers(url: str) -> list[dict]:
    """Each worker as /healthz reports it."""
    return httpx.get(f"{url}/healthz", timeout=10).json()["workers"]


def wait(url: str, job_id: str, timeout: float = 120, headers: dict | None = None) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = httpx.get(f"{url}/v1/jobs/{job_id}", headers=headers, timeout=10).json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.2)
    raise TimeoutError(f"job {job_id} still {job['status']} after {timeout} s")


def events(url: str, job_id: str, timeout: float = 120) -> list[tuple[str, dict]]:
    """Read the job's server-sent events until `done`."""
    seen: list[tuple[str, dict]] = []
    with httpx.stream("GET", f"{url}/v1/jobs/{job_id}/events", timeout=timeout) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        kind = ""
        for line in response.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                seen.append((kind, json.loads(line[6:])))
                if kind == "done":
                    break
    return seen
