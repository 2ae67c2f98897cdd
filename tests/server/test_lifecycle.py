"""Server lifecycle on real processes: overload, crash and restart, binding safety, load
failure."""

from __future__ import annotations

import os
import signal
import sqlite3
import time

import httpx

from tests.helpers.api import submit, until, wait
from tests.helpers.invoke import run_invoke
from tests.helpers.servers import free_port


def test_a_full_queue_answers_429_and_every_accepted_job_finishes(start_server):
    server = start_server("--queue-size", "3")
    accepted, refused = [], []
    for i in range(8):
        response = submit(server.url, steps="40", seed=str(i))  # slower than 8 submits
        (accepted if response.status_code == 202 else refused).append(response)
    assert len(accepted) >= 3 and refused
    for response in refused:
        assert response.status_code == 429
        assert int(response.headers["Retry-After"]) >= 1
        assert "queue is full" in response.json()["detail"]
    for response in accepted:
        assert wait(server.url, response.json()["id"])["status"] == "succeeded"


def test_kill_9_mid_queue_loses_no_accepted_job_and_serves_no_partial_video(start_server):
    server = start_server("--queue-size", "8")
    ids = [submit(server.url, steps="40", frames="8", seed=str(i)).json()["id"] for i in range(3)]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # wait until the first job is mid-run
        job = httpx.get(f"{server.url}/v1/jobs/{ids[0]}").json()
        if job.get("progress", {}).get("step", 0) >= 3:
            break
        time.sleep(0.05)
    server.kill(signal.SIGKILL)
    outputs = server.home / "server" / "outputs"
    assert not (outputs / f"{ids[0]}.mp4").exists()  # the interrupted job left no final file
    with sqlite3.connect(server.home / "server" / "jobs.db") as db:
        statuses = dict(db.execute("SELECT id, status FROM jobs").fetchall())
    assert statuses[ids[0]] == "running" and {statuses[i] for i in ids[1:]} == {"queued"}

    again = start_server("--queue-size", "8")
    assert again.home == server.home
    for job_id in ids:
        job = wait(again.url, job_id, timeout=180)
        assert job["status"] == "succeeded", job
        video = httpx.get(f"{again.url}/v1/jobs/{job_id}/video")
        assert video.status_code == 200 and video.content[4:8] == b"ftyp"
    assert not [p for p in outputs.iterdir() if p.name.startswith(".")]
    assert "recovered 1 job(s)" in again.log.read_text()


def test_interrupted_jobs_fail_by_policy(start_server):
    server = start_server()
    job_id = submit(server.url, steps="150", frames="8").json()["id"]
    until(lambda: httpx.get(f"{server.url}/v1/jobs/{job_id}").json()["status"] == "running",
          f"job {job_id} running")  # fmt: skip
    server.kill(signal.SIGKILL)
    again = start_server("--interrupted", "fail")
    job = httpx.get(f"{again.url}/v1/jobs/{job_id}").json()
    assert job["status"] == "failed" and job["cause"] == "interrupted"


def test_binding_beyond_loopback_needs_a_token(start_server, fresh_home):
    refused = run_invoke("serve", "--model", "demo", "--host", "0.0.0.0", "--port", "1",
                         env={"I2VKIT_HOME": str(fresh_home)})  # fmt: skip
    assert refused.returncode == 2
    assert "--token" in refused.stderr and "--insecure" in refused.stderr

    server = start_server(host="0.0.0.0", env={"I2VKIT_TOKEN": "s3cret-token"})
    assert httpx.get(f"{server.url}/healthz").status_code == 200  # health stays open
    assert submit(server.url).status_code == 401
    assert httpx.get(f"{server.url}/v1/jobs").status_code == 401
    assert httpx.get(f"{server.url}/metrics").status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert httpx.get(f"{server.url}/v1/jobs", headers=wrong).status_code == 401
    good = {"Authorization": "Bearer s3cret-token"}
    job = submit(server.url, headers=good)
    assert job.status_code == 202
    assert wait(server.url, job.json()["id"], headers=good)["status"] == "succeeded"
    login = httpx.post(f"{server.url}/v1/login", data={"token": "s3cret-token"})
    assert login.status_code == 200
    # the cookie is a session that ends, never the token itself
    cookie = login.cookies.get("i2vkit_session")
    assert cookie and "s3cret-token" not in cookie
    assert "Max-Age=43200" in login.headers["set-cookie"]
    assert httpx.get(f"{server.url}/v1/jobs", cookies={"i2vkit_session": cookie}).status_code == 200
    expires, _, mac = cookie.partition(".")
    for forged in (f"{int(expires) + 1}.{mac}", f"1.{mac}", "s3cret-token"):
        refused = httpx.get(f"{server.url}/v1/jobs", cookies={"i2vkit_session": forged})
        assert refused.status_code == 401, forged
    # guessing the token: five failures a minute, then 429 (even for the right token)
    for _ in range(5):
        assert httpx.post(f"{server.url}/v1/login", data={"token": "guess"}).status_code == 401
    limited = httpx.post(f"{server.url}/v1/login", data={"token": "s3cret-token"})
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) > 0
    assert "s3cret-token" not in server.log.read_text()
    # a blank token protects nothing: refused before binding
    blank = run_invoke("serve", "--model", "demo", "--port", "1", "--token", " ",
                       env={"I2VKIT_HOME": str(fresh_home)})  # fmt: skip
    assert blank.returncode == 2 and "blank" in blank.stderr
    wide = run_invoke("serve", "--model", "demo", "--port", "1", "--token", "jeton-privé",
                      env={"I2VKIT_HOME": str(fresh_home)})  # fmt: skip
    assert wide.returncode == 2 and "ASCII" in wide.stderr  # a Bearer header could not carry it


def test_a_model_that_fails_to_load_exits_non_zero_with_the_reason(start_server, fresh_home):
    (fresh_home / "models" / "demo" / "unet" / "config.json").write_text("{broken")
    server = start_server(wait=False)
    assert server.proc.wait(timeout=90) == 1
    log = server.log.read_text()
    assert "failed to load" in log and "exiting" in log


def test_or_stays_up_as_failed_by_flag(start_server, fresh_home):
    (fresh_home / "models" / "demo" / "unet" / "config.json").write_text("{broken")
    server = start_server("--stay-on-failure", wait=False)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            health = httpx.get(f"{server.url}/healthz", timeout=1).json()
            if health["state"] == "FAILED":
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    assert health["state"] == "FAILED" and health["reason"]
    assert httpx.get(f"{server.url}/readyz").status_code == 503
    assert submit(server.url).status_code == 503
    assert server.proc.poll() is None
    os.kill(server.proc.pid, signal.SIGTERM)


def test_out_of_range_server_flags_are_refused_before_loading(fresh_home):
    env = {"I2VKIT_HOME": str(fresh_home), "RAY_ADDRESS": ""}
    for args, message in (
        (["--interrupted", "drop"], "--interrupted 'drop' is unknown; known: retry, fail"),
        (["--queue-size", "0"], "--queue-size 0 is out of range; allowed: 1 to 10000"),
        (["--port", "70000"], "--port 70000 is out of range"),
        (["--device", "gpu0"], "--device 'gpu0' is not cpu or cuda:N"),
        (["--parallel", "2"], "demo is i2vgen-xl: serve it with --parallel 1"),
        (["--cluster", "auto"], "--cluster auto reads RAY_ADDRESS, which is not set"),
        (["--cluster", "ray://127.0.0.2:10001"], "Ray Client (ray://) does not stream"),
        (["--cluster", "127.0.0.2:1", "--device", "cpu"], "--cluster and --device exclude"),
    ):
        done = run_invoke("serve", "--model", "demo", *args, env=env)
        assert done.returncode == 2, done.stderr
        assert message in done.stderr


def test_a_second_server_on_the_same_home_is_refused_and_the_first_keeps_its_job(start_server):
    first = start_server()
    job_id = submit(first.url, steps="60", frames="8").json()["id"]
    until(lambda: httpx.get(f"{first.url}/v1/jobs/{job_id}").json()["status"] == "running",
          f"job {job_id} running")  # fmt: skip
    second = run_invoke("serve", "--model", "demo", "--port", str(free_port()),
                        env={"I2VKIT_HOME": str(first.home)})  # fmt: skip
    assert second.returncode == 1, second.stderr
    assert f"pid {first.proc.pid}" in second.stderr and f":{first.port}" in second.stderr
    assert "I2VKIT_HOME" in second.stderr
    job = wait(first.url, job_id)
    assert job["status"] == "succeeded" and job["error"] is None, job
    assert "recovered" not in first.log.read_text()


def test_a_busy_port_is_refused_before_loading_naming_the_flag(start_server, tmp_path):
    first = start_server()
    home = tmp_path / "other-home"
    done = run_invoke("serve", "--model", "demo", "--port", str(first.port),
                      env={"I2VKIT_HOME": str(home)})  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert f"cannot listen on 127.0.0.1:{first.port}" in done.stderr and "--port" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (home / "server").exists()  # refused before it touched a job store
    assert httpx.get(f"{first.url}/readyz").status_code == 200
