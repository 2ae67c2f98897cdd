"""Throughput with 1 and 2 workers, as local processes and as Ray actors, and the per-job
overhead of the Ray path against the local one on the same job, in one run.

    python benchmarks/scaling.py [--jobs 6] [--steps 20] [--repeat 3]

Each configuration is a real `invoke serve` (tests/helpers/server.py) with the demo model:
local: `--device cpu` and `--device cpu,cpu`; Ray: `--cluster` on a loopback Ray cluster
(ray.cluster_utils) with one and then two worker nodes of one (logical) GPU. Throughput: --jobs
jobs submitted at once, jobs per minute from the first POST to the last `succeeded`. Overhead:
one job at a time, the median of --repeat, from the POST to `succeeded`, Ray / local; and the
fixed cost of a job's trip, a 1-step 64x64 job (median of 5), Ray minus local. The
configurations run one after the other, never sharing the CPU; every worker runs one torch
thread (Ray's default for an actor that asks for no CPU, set for the local workers alike).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from tests.helpers.server import Server  # noqa: E402

IP = "127.0.0.2"  # loopback that Ray does not rewrite: see tests/server/test_cluster.py
# one torch thread per worker, as Ray gives an actor that asks for no CPU (OMP_NUM_THREADS=1):
# the local and Ray paths then run the same compute, and two workers use the two cores
ONE_THREAD = {"OMP_NUM_THREADS": "1"}


def _png() -> bytes:
    from i2vkit.runtime.pictures import gradient_picture

    buf = io.BytesIO()
    gradient_picture(256, 256).save(buf, "PNG")
    return buf.getvalue()


def _job(url: str, fields: dict[str, str], png: bytes) -> str:
    response = httpx.post(f"{url}/v1/jobs", data=fields, files={"image": ("in.png", png)},
                          timeout=30)  # fmt: skip
    response.raise_for_status()
    return str(response.json()["id"])


def _done(url: str, job_id: str) -> dict:
    while True:
        job = httpx.get(f"{url}/v1/jobs/{job_id}", timeout=10).json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            assert job["status"] == "succeeded", job
            return dict(job)
        time.sleep(0.02)


def measure(server: Server, jobs: int, repeat: int, steps: int) -> dict[str, float]:
    png = _png()
    fields = {"height": "256", "width": "256", "frames": "8", "steps": str(steps)}
    _done(server.url, _job(server.url, {**fields, "steps": "2"}, png))  # every path warmed
    single = []
    for i in range(repeat):
        start = time.perf_counter()
        _done(server.url, _job(server.url, {**fields, "seed": str(i)}, png))
        single.append(time.perf_counter() - start)
    # the fixed cost of a job's trip (POST to succeeded) apart from its compute: a 1-step job
    # of 64x64, 2 frames, whose compute is a few tens of ms
    tiny = {"height": "64", "width": "64", "frames": "2", "steps": "1"}
    trips = []
    for i in range(5):
        start = time.perf_counter()
        _done(server.url, _job(server.url, {**tiny, "seed": str(i)}, png))
        trips.append(time.perf_counter() - start)
    start = time.perf_counter()
    ids = [_job(server.url, {**fields, "seed": str(i)}, png) for i in range(jobs)]
    for job_id in ids:
        _done(server.url, job_id)
    wall = time.perf_counter() - start
    return {"job_s": round(statistics.median(single), 3),
            "tiny_job_s": round(statistics.median(trips), 3),
            "jobs_per_min": round(jobs / wall * 60, 2)}  # fmt: skip


def local(home: Path, devices: str, args: argparse.Namespace) -> dict[str, float]:
    server = Server(home, "--queue-size", "32", device=devices, env=ONE_THREAD).start()
    try:
        return measure(server, args.jobs, args.repeat, args.steps)
    finally:
        server.stop()


def ray(home: Path, nodes: int, args: argparse.Namespace) -> dict[str, float]:
    from ray.cluster_utils import Cluster

    os.environ["I2VKIT_HOME"] = str(home)
    cluster = Cluster(initialize_head=True, head_node_args={
        "node_ip_address": IP, "num_cpus": 1, "num_gpus": 0,
        "object_store_memory": 80 * 2**20, "include_dashboard": False})  # fmt: skip
    try:
        for _ in range(nodes):
            cluster.add_node(node_ip_address=IP, num_cpus=2, num_gpus=1,
                             object_store_memory=80 * 2**20)  # fmt: skip
        cluster.wait_for_nodes()
        api = home.parent / f"api-{nodes}"
        shutil.copytree(home, api)
        server = Server(api, "--cluster", cluster.address, "--queue-size", "32",
                        device=None).start()  # fmt: skip
        try:
            return measure(server, args.jobs, args.repeat, args.steps)
        finally:
            server.stop()
    finally:
        cluster.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=6)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from i2vkit.runtime import twins

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        twins.save(home / "models" / "demo")
        results = {
            "local_1": local(home, "cpu", args),
            "local_2": local(home, "cpu,cpu", args),
            "ray_1": ray(home, 1, args),
            "ray_2": ray(home, 2, args),
        }
    print(json.dumps({
        "job": f"demo 256x256, 8 frames, {args.steps} steps; {args.jobs} jobs at once",
        **results,
        "local_2_over_1_throughput": round(
            results["local_2"]["jobs_per_min"] / results["local_1"]["jobs_per_min"], 3),
        "ray_2_over_1_throughput": round(
            results["ray_2"]["jobs_per_min"] / results["ray_1"]["jobs_per_min"], 3),
        "ray_over_local_job_s": round(
            results["ray_1"]["job_s"] / results["local_1"]["job_s"], 3),
        "ray_minus_local_tiny_job_s": round(
            results["ray_1"]["tiny_job_s"] - results["local_1"]["tiny_job_s"], 3),
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
