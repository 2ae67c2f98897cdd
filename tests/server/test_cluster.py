"""`invoke serve --cluster`: a real Ray cluster on loopback (ray.cluster_utils.Cluster: a head
node's GCS and, per worker node, its own raylet and object store, all real Ray processes) with
two worker nodes of one GPU each. The GPUs are Ray's logical resources (`num_gpus=1`), the way
Ray's own tests give a CPU machine GPUs; the actors then run the demo model on the CPU.

Everything binds 127.0.0.2, a loopback address: Ray rewrites 127.0.0.1 (and "localhost") to
the machine's own IP (ray/_private/services.py `resolve_ip_for_localhost`), and `ray start`
refuses the switch that stops it (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0) for a multi-node
cluster; the rest of 127.0.0.0/8 it takes as given.

Each node's processes are started and killed by the Cluster through their own Popen handles;
removing a node mid-job is a real node death (its raylet and its workers SIGKILLed).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from i2vkit.tools import script
from tests.helpers.api import running, submit, until, wait, workers
from tests.helpers.server import Server

IP = "127.0.0.2"
NODE = {"node_ip_address": IP, "num_cpus": 2, "num_gpus": 1,
        "object_store_memory": 80 * 2**20}  # fmt: skip


@pytest.fixture(scope="module")
def cluster(demo_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from ray.cluster_utils import Cluster

    home = tmp_path_factory.mktemp("ray-home")
    shutil.copytree(demo_home, home, dirs_exist_ok=True)
    # the nodes' processes inherit this environment: their actors' i2vkit home holds the twin
    saved = os.environ.get("I2VKIT_HOME")
    os.environ["I2VKIT_HOME"] = str(home)
    head = {"node_ip_address": IP, "num_cpus": 1, "num_gpus": 0,
            "object_store_memory": 80 * 2**20, "include_dashboard": False}  # fmt: skip
    c = Cluster(initialize_head=True, head_node_args=head)
    try:
        for _ in range(2):
            c.add_node(**NODE)
        c.wait_for_nodes()
        yield c
    finally:
        c.shutdown()
        if saved is None:
            os.environ.pop("I2VKIT_HOME", None)
        else:
            os.environ["I2VKIT_HOME"] = saved


@pytest.fixture
def served(cluster, tmp_path: Path, demo_home: Path) -> Iterator[Server]:
    home = tmp_path / "api-home"  # the API node's own store, apart from the nodes' homes
    shutil.copytree(demo_home, home)
    server = Server(home, "--cluster", cluster.address, "--queue-size", "12", device=None)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _both_ready(served: Server) -> list[dict]:
    """A cluster's server is READY once one actor loaded; the tests want both placed."""

    def both() -> list[dict] | None:
        ws = workers(served.url)
        return ws if len(ws) == 2 and all(w["state"] == "ready" for w in ws) else None

    return until(both, "both actors loaded", timeout=180)


def test_jobs_spread_over_the_nodes_and_progress_streams_back(served):
    ready = _both_ready(served)
    assert len({w["node_id"] for w in ready}) == 2, ready
    ids = [submit(served.url, steps="12", seed=str(i)).json()["id"] for i in range(4)]
    jobs = [wait(served.url, i, timeout=240) for i in ids]
    assert [j["status"] for j in jobs] == ["succeeded"] * 4, jobs
    nodes = {j["result"]["worker"]["node_id"] for j in jobs}
    assert len(nodes) == 2, "both nodes' GPUs ran jobs"
    assert {j["result"]["worker"]["kind"] for j in jobs} == {"ray"}
    video = httpx.get(f"{served.url}/v1/jobs/{ids[0]}/video", timeout=30)
    assert video.status_code == 200 and video.content[4:8] == b"ftyp"
    info = httpx.get(f"{served.url}/v1/info", timeout=10).json()
    assert info["cluster"]["gpus"] == 2 and info["loads"] == 2


def test_cancel_reaches_the_actor_mid_job(served):
    job_id = submit(served.url, steps="150").json()["id"]
    running(served.url, job_id)
    assert httpx.post(f"{served.url}/v1/jobs/{job_id}/cancel", timeout=10).status_code == 202
    job = wait(served.url, job_id, timeout=60)
    assert job["status"] == "cancelled" and job["error"] == "cancelled while running", job
    after = submit(served.url).json()["id"]  # the worker goes on
    assert wait(served.url, after, timeout=120)["status"] == "succeeded"


def test_a_node_that_leaves_mid_job_has_its_job_finished_elsewhere_and_new_gpus_are_used(
    cluster, served
):
    old_nodes = {w["node_id"] for w in _both_ready(served)}
    job_id = submit(served.url, steps="60", seed="7").json()["id"]
    running(served.url, job_id)
    worker = next(w for w in workers(served.url) if w["job"] == job_id)
    victim = next(n for n in cluster.worker_nodes if n.node_id == worker["node_id"])
    cluster.remove_node(victim, allow_graceful=False)  # its raylet and workers: SIGKILL
    job = wait(served.url, job_id, timeout=240)
    assert job["status"] == "succeeded", job
    assert job["result"]["worker"]["node_id"] != worker["node_id"]
    video = httpx.get(f"{served.url}/v1/jobs/{job_id}/video", timeout=30)
    assert video.status_code == 200 and video.content[4:8] == b"ftyp"
    assert httpx.get(f"{served.url}/readyz", timeout=10).status_code == 200
    lost = next(w for w in workers(served.url) if w["name"] == worker["name"])
    assert lost["deaths"] == 1

    # a GPU joins through the documented worker-node command (the image's entrypoint runs the
    # same `ray start`): the lost worker's new actor lands there
    with _ray_start(cluster.address) as joined:

        def on_new_node() -> dict | None:
            ready = [w for w in workers(served.url) if w["state"] == "ready"]
            return next((w for w in ready if w["node_id"] not in old_nodes), None)

        new = until(on_new_node, "a worker on the joined node", timeout=120)
        # long enough that each submit finds the other worker still busy: both run jobs
        ids = [submit(served.url, steps="20", seed=str(i)).json()["id"] for i in range(4)]
        done = [wait(served.url, i, timeout=240) for i in ids]
        assert {j["result"]["worker"]["node_id"] for j in done} >= {new["node_id"]}
        assert joined.poll() is None


@contextlib.contextmanager
def _ray_start(address: str) -> Iterator[subprocess.Popen]:
    """`ray start --address=... --block` in its own session, stopped by its own pid (and its
    raylet and workers with it, by that session's process group)."""
    command = [str(script("ray", "ray")), "start", f"--address={address}", "--num-gpus=1",
               "--num-cpus=2", f"--node-ip-address={IP}", "--object-store-memory",
               str(80 * 2**20), "--block"]  # fmt: skip
    proc = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
