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
