"""`invoke setup` as a user runs it, against loopback stand-ins (tests/env/conftest.py)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from i2vkit import tools
from tests.helpers.config import invoke_config
from tests.helpers.invoke import ROOT
from tests.helpers.servers import DelayProxy


def setup(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "invoke", "setup", *args],
        cwd=ROOT, env={**env, "COLUMNS": "200"}, capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip


def env_python(env: dict[str, str]) -> Path:
    return Path(env["I2VKIT_HOME"]) / "envs" / "default" / "bin" / "python"


def test_dry_run_prints_the_whole_plan_without_the_network(tmp_path):
    unshare = tools.system("unshare", "util-linux")
    probe = subprocess.run([unshare, "-n", "true"], capture_output=True)
    assert probe.returncode == 0, f"no network namespace here (root?): {probe.stderr.decode()}"
    done = subprocess.run(
        [unshare, "-n", sys.executable, "-m", "invoke", "setup", "--dry-run", "--mirror",
         "tuna", "--model", "i2vgen-xl", "--cuda", "cu126"],
        cwd=ROOT, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "COLUMNS": "200",
                                                      "HOME": str(tmp_path / "no-home")},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for expected in (
        "torch==2.13.0+cu126",
        "https://pypi.tuna.tsinghua.edu.cn/simple (tuna)",
        "https://mirrors.aliyun.com/pytorch-wheels/cu126 (aliyun)",
        "https://hf-mirror.com (hf-mirror)",
        "tuna lacks hf",
        "unet/diffusion_pytorch_model.fp16.safetensors",
        "2,840,938,448",
        "4,979,959,133",
    ):
        assert expected in out, expected
    assert not (tmp_path / "no-home").exists()  # nothing was written


def test_venv_backend_installs_through_the_mirror_then_a_rerun_is_a_no_op(setup_env, small_sources):
    lock = small_sources["locks"] / "small.txt"
    before = len(small_sources["pypi"].fetched())
    done = setup(setup_env, "--mirror", "local", "--cuda", "cpu", "--no-weights", "--lock",
                 str(lock))  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    python = env_python(setup_env)
    imported = subprocess.run([python, "-c", "import alpha, beta, torch; print(torch.VERSION)"],
                              capture_output=True, text=True)  # fmt: skip
    assert imported.stdout.strip() == "2.13.0+cpu", imported.stderr
    fetched = small_sources["pypi"].fetched()[before:]
    assert {f.split("-")[0] for f in fetched} == {"alpha", "beta"}
    # the env carries the mirror's config for later installs; the user's own is untouched
    env_dir = python.parent.parent
    assert small_sources["pypi"].url in (env_dir / "pip.conf").read_text()
    assert small_sources["pypi"].url in (env_dir / "uv.toml").read_text()
    assert not Path(setup_env["XDG_CONFIG_HOME"]).exists()
    assert "local" in done.stdout and "env ready" in done.stdout

    again = setup(setup_env, "--mirror", "local", "--cuda", "cpu", "--no-weights", "--lock",
                  str(lock))  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "up to date" in again.stdout
    assert small_sources["pypi"].fetched()[before:] == fetched  # no request at all


def test_an_interrupted_setup_leaves_the_previous_env_working(setup_env, small_sources, tmp_path):
    locks = small_sources["locks"]
    first = setup(setup_env, "--mirror", "local", "--cuda", "cpu", "--no-weights", "--lock",
                  str(locks / "small.txt"))  # fmt: skip
    assert first.returncode == 0, first.stderr
    envs = Path(setup_env["I2VKIT_HOME"]) / "envs"
    current = (envs / "default").resolve()

    slow = DelayProxy(int(small_sources["pypi"].url.rsplit(":", 1)[1]), delay=3.0)
    config = invoke_config(tmp_path / "slow.yaml", slow.url, small_sources["torch"].url, None)
    env = {**setup_env, "INVOKE_RUNTIME_CONFIG": str(config)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "invoke", "setup", "--mirror", "local", "--cuda", "cpu",
         "--no-weights", "--lock", str(locks / "bigger.txt")],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip

    def building() -> list[Path]:
        return [p for p in envs.glob("default-*/bin/python") if p.parent.parent != current]

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not building():
        time.sleep(0.05)
    assert building(), "the second setup never started building"
    time.sleep(0.5)  # inside the install, talking to the slow mirror
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    slow.stop()

    assert (envs / "default").resolve() == current  # the symlink was never touched
    check = subprocess.run([env_python(setup_env), "-c", "import alpha, beta"])
    assert check.returncode == 0
    again = setup(setup_env, "--mirror", "local", "--cuda", "cpu", "--no-weights", "--lock",
                  str(locks / "bigger.txt"))  # fmt: skip
    assert again.returncode == 0, again.stdout + again.stderr
    leftovers = [p for p in envs.iterdir() if p.name not in ("default",)
                 and p != (envs / "default").resolve()]  # fmt: skip
    assert leftovers == []  # the killed run's half-built folder is gone
    assert subprocess.run([env_python(setup_env), "-c", "import gamma"]).returncode == 0
    assert not current.exists()  # the replaced env was removed


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--mirror", "tuan"], "mirror 'tuan' is unknown; known:"),
        (["--cuda", "cu999"], "cuda variant 'cu999' is unknown"),
        (["--cuda", "cu118"], "cuda variant 'cu118' is unknown; known: auto, cpu, cu126"),
        (["--backend", "pixi"], "backend 'pixi' is unknown"),
        (["--lock", "/nonexistent.txt"], "lockfile /nonexistent.txt does not exist"),
        (["--model", "i2vgen"], "model 'i2vgen' is unknown"),
    ],
)
def test_bad_input_names_the_value_and_the_fix(setup_env, args, message):
    done = setup(setup_env, "--dry-run", *args)
    assert done.returncode == 2
    assert message in done.stderr


def test_global_config_is_written_only_when_asked(setup_env, small_sources):
    done = setup(setup_env, "--mirror", "local", "--cuda", "cpu", "--no-weights", "--lock",
                 str(small_sources["locks"] / "small.txt"), "--global-config")  # fmt: skip
    assert done.returncode == 0, done.stderr
    user = Path(setup_env["XDG_CONFIG_HOME"])
    assert small_sources["pypi"].url in (user / "pip" / "pip.conf").read_text()
    assert small_sources["pypi"].url in (user / "uv" / "uv.toml").read_text()
    assert (Path(setup_env["HOME"]) / ".condarc").exists()


@pytest.mark.parametrize(
    ("model", "terms"),
    [
        ("hunyuan-video-1.5-i2v-480p", "not licensed in the EU, the UK or South Korea"),
        ("ltx-video-13b-0.9.8-fast", "LTXV Open Weights License"),
        ("wan2.2-i2v-a14b-fast", "Apache-2.0"),  # the model's and its LoRA's
    ],
)
def test_the_plan_states_the_licence_terms_before_downloading(tmp_path, model, terms):
    done = subprocess.run(
        [sys.executable, "-m", "invoke", "setup", "--dry-run", "--model", model, "--json"],
        cwd=ROOT, capture_output=True, text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "COLUMNS": "200"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    import json

    licences = json.loads(done.stdout)["plan"]["license"]
    assert any(terms in line for line in licences), licences
    if model.startswith("wan"):
        assert len(licences) == 2  # the LoRA's terms too
