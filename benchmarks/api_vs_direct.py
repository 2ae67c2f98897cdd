"""One job through the HTTP API vs the same job called directly in Python, in one run; then
the status-polling rate the server sustains while a job runs, and what polling costs the job.

    python benchmarks/api_vs_direct.py [--steps 10] [--repeat 3] [--poll-seconds 10]

Direct: `Runner.generate` in this process (model loaded and warmed first). API: `invoke serve`
in a child process; the time from POST to the `done` event. Both medians of --repeat runs,
measured one after the other so they never share the CPU.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from i2vkit import request  # noqa: E402
from i2vkit.runtime.loader import Loader  # noqa: E402
from i2vkit.runtime.pictures import gradient_picture  # noqa: E402
from i2vkit.runtime.runner import Runner  # noqa: E402
from i2vkit.settings import resolve  # noqa: E402
from tests.helpers.server import Server  # noqa: E402


def direct(home: Path, s: request.Request, repeat: int) -> float:
    app = resolve({"home": str(home)}, {}, {})
    runner = Runner(Loader(s.model, app), app)
    image = gradient_picture(s.height, s.width)
    with tempfile.TemporaryDirectory() as tmp:
        runner.generate(s.replace(steps=1), image, Path(tmp) / "warm.mp4")
        times = []
        for i in range(repeat):
            start = time.perf_counter()
            runner.generate(s, image, Path(tmp) / f"{i}.mp4")
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def via_api(url: str, s: request.Request, png: bytes) -> float:
    fields = {k: str(getattr(s, k)) for k in ("height", "width", "frames", "steps", "seed")}
    start = time.perf_counter()
    job = httpx.post(f"{url}/v1/jobs", data=fields, files={"image": ("in.png", png)}).json()
    with httpx.stream("GET", f"{url}/v1/jobs/{job['id']}/events", timeout=600) as events:
        for line in events.iter_lines():
            if line.startswith("event: done"):
                break
    return time.perf_counter() - start


def poll(url: str, job_id: str, seconds: float, clients: int, interval: float = 0.0) -> float:
    count = [0] * clients
    stop = time.monotonic() + seconds

    def client(i: int) -> None:
        with httpx.Client() as c:
            while time.monotonic() < stop:
                c.get(f"{url}/v1/jobs/{job_id}").raise_for_status()
                count[i] += 1
                if interval:
                    time.sleep(interval)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(count) / seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--poll-seconds", type=float, default=10)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    from i2vkit.runtime import twins

    s = request.make("demo", "preview", steps=args.steps)
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        twins.save(home / "models" / "demo")
        direct_s = direct(home, s, args.repeat)
        buf = __import__("io").BytesIO()
        gradient_picture(s.height, s.width).save(buf, "PNG")
        png = buf.getvalue()
        server = Server(home, "--queue-size", "4").start()
        try:
            via_api(server.url, s.replace(steps=1), png)  # warmed like the direct path
            api_times = [via_api(server.url, s, png) for _ in range(args.repeat)]
            api_s = statistics.median(api_times)
            long = s.replace(steps=150)  # the most a request may ask: outlasts the polling
            fields = {k: str(getattr(long, k)) for k in ("height", "width", "frames", "steps")}
            job = httpx.post(f"{server.url}/v1/jobs", data=fields,
                             files={"image": ("in.png", png)}).json()  # fmt: skip
            time.sleep(1)
            rate = poll(server.url, job["id"], args.poll_seconds, args.clients)
            httpx.post(f"{server.url}/v1/jobs/{job['id']}/cancel")
            quiet = via_api(server.url, s, png)
            polled = {}
            for label, interval in (("flat_out", 0.0), ("10_per_s_each", 0.1)):
                result: list[float] = []
                done = threading.Event()

                def run_job(out: list[float] = result, finished: threading.Event = done) -> None:
                    out.append(via_api(server.url, s, png))
                    finished.set()

                runner = threading.Thread(target=run_job)
                runner.start()
                time.sleep(0.2)
                job_id = httpx.get(f"{server.url}/v1/jobs?limit=1").json()[0]["id"]
                while not done.is_set():
                    poll(server.url, job_id, 1.0, args.clients, interval)
                runner.join()
                polled[label] = result[0]
        finally:
            server.stop()
    print(json.dumps({
        "job": f"demo {s.height}x{s.width}, {s.frames} frames, {s.steps} steps",
        "direct_s": round(direct_s, 3), "api_s": round(api_s, 3),
        "api_over_direct": round(api_s / direct_s, 3),
        "status_polls_per_s_during_a_job": round(rate, 1), "clients": args.clients,
        "job_s_quiet": round(quiet, 3),
        "job_s_polled_flat_out": round(polled["flat_out"], 3),
        "job_s_polled_10_per_s_per_client": round(polled["10_per_s_each"], 3),
        "slowdown_flat_out": round(polled["flat_out"] / quiet, 3),
        "slowdown_10_per_s_per_client": round(polled["10_per_s_each"] / quiet, 3),
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
