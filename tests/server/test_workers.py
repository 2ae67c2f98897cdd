"""Workers in their own processes under the local default: a worker killed with SIGKILL mid-job
takes only its job (retried or failed by --interrupted) and is restarted while the server stays
READY; a worker that cannot come back makes health say so; two workers share the queue.

The worker's pid comes from /healthz and is checked (its parent is the server, its command line
is multiprocessing's spawn) before it is signalled."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx

from tests.helpers.api import running, submit, until, wait, workers


def _kill_worker_mid_job(server, job_id: str) -> int:
    running(server.url, job_id)
    worker = next(w for w in workers(server.url) if w["job"] == job_id)
    pid = worker["pid"]
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    assert int(stat[1]) == server.proc.pid, "the worker is the server's child"
    assert b"multiprocessing" in Path(f"/proc/{pid}/cmdline").read_bytes()
    os.kill(pid, signal.SIGKILL)
    return pid


def test_a_worker_killed_mid_job_is_restarted_and_its_job_retried(start_server):
    server = start_server()
    job_id = submit(server.url, steps="60", frames="8").json()["id"]
    killed = _kill_worker_mid_job(server, job_id)
    states = set()
    while (job := httpx.get(f"{server.url}/v1/jobs/{job_id}", timeout=10).json())["status"] not in (
        "succeeded",
        "failed",
        "cancelled",
    ):
        states.add(httpx.get(f"{server.url}/readyz", timeout=10).status_code)
        time.sleep(0.1)  # not a busy loop beside the worker restarting on 2 cores
    assert states <= {200}, "the server stayed ready while its worker restarted"
    assert job["status"] == "succeeded", job
    assert job["result"]["worker"]["pid"] != killed
    video = httpx.get(f"{server.url}/v1/jobs/{job_id}/video", timeout=30)
    assert video.status_code == 200 and video.content[4:8] == b"ftyp"
    # the job shows as succeeded a moment before its worker says ready again
    worker = until(lambda: (w := workers(server.url)[0])["state"] == "ready" and w,
                   "the worker ready after the job", timeout=30)  # fmt: skip
    assert worker["deaths"] == 1 and worker["pid"] != killed
    assert "killed by SIGKILL" in server.log.read_text()
    with httpx.Client(timeout=10) as client:
        metrics = client.get(f"{server.url}/metrics").text
    assert 'cause="worker_lost"} 1.0' in metrics


def test_by_policy_the_killed_worker_s_job_fails_and_the_next_runs(start_server):
    server = start_server("--interrupted", "fail")
    job_id = submit(server.url, steps="60", frames="8").json()["id"]
    _kill_worker_mid_job(server, job_id)
    job = wait(server.url, job_id, timeout=120)
    assert job["status"] == "failed" and job["cause"] == "interrupted", job
    assert "killed by SIGKILL" in job["error"]
    assert not (server.home / "server" / "outputs" / f"{job_id}.mp4").exists()
    assert wait(server.url, submit(server.url).json()["id"], timeout=120)["status"] == "succeeded"


def test_a_worker_that_cannot_come_back_turns_health_failed(start_server, tmp_path):
    marker = tmp_path / "loaded"
    server = start_server(env={"I2VKIT_STARTUP_HOOK": "tests.helpers.faults:load_once",
                               "I2VKIT_TEST_LOADED": str(marker)})  # fmt: skip
    job_id = submit(server.url, steps="60", frames="8").json()["id"]
    _kill_worker_mid_job(server, job_id)
    # three tries to load (each a process start) and 12 s of backoff between them
    ready = until(lambda: (r := httpx.get(f"{server.url}/readyz", timeout=10)).status_code == 503
                  and r, "readyz 503", timeout=200)  # fmt: skip
    assert ready.json()["state"] == "FAILED"
    assert "no worker can run" in ready.json()["reason"]
    assert "injected: this worker loads only once" in ready.json()["reason"]
    assert workers(server.url)[0]["state"] == "failed"
    refused = submit(server.url)
    assert refused.status_code == 503, refused.text
    # the interrupted job is back in the queue (retry policy), not lost
    assert httpx.get(f"{server.url}/v1/jobs/{job_id}", timeout=10).json()["status"] == "queued"


def test_two_workers_share_the_queue(start_server):
    server = start_server("--queue-size", "8", device="cpu,cpu")
    pair = workers(server.url)
    assert [w["state"] for w in pair] == ["ready", "ready"]
    ids = [submit(server.url, steps="20", seed=str(i)).json()["id"] for i in range(4)]
    jobs = [wait(server.url, i, timeout=240) for i in ids]
    assert [j["status"] for j in jobs] == ["succeeded"] * 4
    assert {j["result"]["worker"]["pid"] for j in jobs} == {w["pid"] for w in pair}


def test_a_parallel_group_cancels_together_and_a_lost_rank_restarts_it(start_server):
    """--parallel 2 on the CPU: one worker of two ranks. A cancel stops both at the same step
    (the next job runs, so neither was left in a collective); SIGKILL on rank 1 loses the
    group's job to a retry on a restarted group."""
    server = start_server("--parallel", "2", device="cpu,cpu", model="wan-demo")
    (worker,) = workers(server.url)
    assert len(worker["pids"]) == 2
    wan = {"height": "128", "width": "128", "frames": "9", "guidance": "5"}
    job_id = submit(server.url, steps="150", **wan).json()["id"]
    running(server.url, job_id)
    httpx.post(f"{server.url}/v1/jobs/{job_id}/cancel", timeout=10)
    assert wait(server.url, job_id, timeout=60)["status"] == "cancelled"
    done = wait(server.url, submit(server.url, steps="4", **wan).json()["id"], timeout=120)
    assert done["status"] == "succeeded" and done["result"]["options"]["parallel"] == "ulysses x2"

    job_id = submit(server.url, steps="60", **wan).json()["id"]
    running(server.url, job_id)
    rank1 = workers(server.url)[0]["pids"][1]
    assert b"multiprocessing" in Path(f"/proc/{rank1}/cmdline").read_bytes()
    os.kill(rank1, signal.SIGKILL)
    job = wait(server.url, job_id, timeout=240)
    assert job["status"] == "succeeded", job
    (worker,) = workers(server.url)
    assert worker["deaths"] == 1 and rank1 not in worker["pids"]
    assert "rank 1) killed by SIGKILL" in server.log.read_text()


def test_a_worker_killed_while_idle_is_restarted_before_the_next_job(start_server):
    server = start_server()
    (worker,) = workers(server.url)
    stat = Path(f"/proc/{worker['pid']}/stat").read_text().rsplit(")", 1)[1].split()
    assert int(stat[1]) == server.proc.pid
    os.kill(worker["pid"], signal.SIGKILL)

    def restarted() -> dict | None:
        (now,) = workers(server.url)
        return now if now["state"] == "ready" and now["pid"] != worker["pid"] else None

    now = until(restarted, "the worker restarted", timeout=180)  # a process start and a load
    assert now["deaths"] == 1
    assert wait(server.url, submit(server.url).json()["id"], timeout=120)["status"] == "succeeded"
