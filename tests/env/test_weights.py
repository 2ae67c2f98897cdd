"""Weights through a real Hub-protocol server (olah, offline mode, serving a git repo of the
saved demo model), then loaded by the runtime with HF_HUB_OFFLINE=1."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.helpers.config import invoke_config
from tests.helpers.invoke import ROOT
from tests.helpers.olah import OlahHub


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory):
    from i2vkit.runtime import twins

    root = tmp_path_factory.mktemp("olah")
    model = twins.save(root / "model", "i2vgen-xl")
    server = OlahHub(root / "server", {"i2vkit/demo-i2vgen-xl-tiny": model})
    yield server
    server.stop()


def test_setup_fetches_the_demo_from_the_hub_and_the_runtime_loads_it_offline(
    hub, small_sources, setup_env, tmp_path
):
    config = invoke_config(tmp_path / "hub.yaml", small_sources["pypi"].url, None, hub.url)
    env = {**setup_env, "INVOKE_RUNTIME_CONFIG": str(config), "HF_HOME": str(tmp_path / "hf")}
    done = subprocess.run(
        [sys.executable, "-m", "invoke", "setup", "--weights-only", "--model", "demo",
         "--mirror", "local", "--json"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    weights = next(s for s in report["steps"] if s["name"] == "weights")
    assert weights["source"] == "local"
    snapshots = list(
        (tmp_path / "hf" / "hub").glob("models--i2vkit--demo-i2vgen-xl-tiny/snapshots/*")
    )
    assert len(snapshots) == 1 and (snapshots[0] / "unet" / "config.json").exists()
    assert '"GET /api/models/i2vkit/demo-i2vgen-xl-tiny' in hub.log.read_text()

    # the runtime, offline, finds it in the cache (not the locally built fallback) and runs it
    code = (
        "from i2vkit.settings import resolve; from i2vkit.runtime.loader import Loader; "
        "from i2vkit import request; from i2vkit.runtime.pipelines import FAMILIES; "
        "from i2vkit.runtime.pipelines.base import Generation; "
        "from i2vkit.runtime.pictures import gradient_picture; "
        "app = resolve(); loaded = Loader('demo', app, device='cpu').get(); "
        "print(loaded.pipe.name_or_path); "
        "s = request.make('demo', 'preview', height=64, width=64, frames=2, steps=1); "
        "picture = gradient_picture(64, 64); "
        "print(FAMILIES['i2vgen-xl'].run(loaded.pipe, Generation(s, picture)).shape)"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         env={**env, "HF_HUB_OFFLINE": "1"}, timeout=300)  # fmt: skip
    assert run.returncode == 0, run.stderr
    path, shape = run.stdout.strip().splitlines()[-2:]
    assert str(tmp_path / "hf" / "hub") in path
    assert shape == "(2, 64, 64, 3)"
    assert not (tmp_path / "home" / "models" / "demo").exists()  # nothing was built locally

    again = subprocess.run(
        [sys.executable, "-m", "invoke", "setup", "--weights-only", "--model", "demo",
         "--mirror", "local"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert "up to date" in again.stdout, again.stdout + again.stderr


def test_a_gated_or_missing_model_says_what_to_do(hub, small_sources, setup_env, tmp_path):
    config = invoke_config(tmp_path / "hub.yaml", small_sources["pypi"].url, None, hub.url)
    env = {**setup_env, "INVOKE_RUNTIME_CONFIG": str(config), "HF_HOME": str(tmp_path / "hf")}
    done = subprocess.run(
        [sys.executable, "-m", "invoke", "setup", "--weights-only", "--model", "svd",
         "--mirror", "local"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1  # it could not be done (exit 2 is for a wrong command)
    assert "no source could provide stabilityai/stable-video-diffusion-img2vid" in done.stderr
    assert "local does not serve" in done.stderr


def test_setup_fetches_a_fast_entrys_base_and_lora_and_the_runtime_fuses_it_offline(
    small_sources, setup_env, tmp_path
):
    """`wan-demo-a14b-fast`: the A14B twin's weights and its LoRA (two files, one per expert)
    are separate repos; setup takes both from the hub, and the runtime fuses the cached LoRA."""
    from i2vkit.runtime import twins

    root = tmp_path / "repos"
    base = twins.save(root / "base", "wan", twin="a14b")
    lora = twins.save_lora(root / "lora", "wan", twin="a14b")
    hub = OlahHub(tmp_path / "olah", {"i2vkit/wan-demo-a14b-tiny": base,
                                      "i2vkit/wan-demo-a14b-lora": lora})  # fmt: skip
    try:
        config = invoke_config(tmp_path / "hub.yaml", small_sources["pypi"].url, None, hub.url)
        env = {**setup_env, "INVOKE_RUNTIME_CONFIG": str(config), "HF_HOME": str(tmp_path / "hf")}
        done = subprocess.run(
            [sys.executable, "-m", "invoke", "setup", "--weights-only", "--model",
             "wan-demo-a14b-fast", "--mirror", "local", "--json"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    finally:
        hub.stop()
    assert done.returncode == 0, done.stderr[-3000:]
    weights = next(s for s in json.loads(done.stdout)["steps"] if s["name"] == "weights")
    assert weights["source"] == "local; LoRA: local"
    cached = tmp_path / "hf" / "hub" / "models--i2vkit--wan-demo-a14b-lora" / "snapshots"
    assert {p.name for p in cached.glob("*/*.safetensors")} == {
        "high_noise_model.safetensors",
        "low_noise_model.safetensors",
    }

    code = (
        "from i2vkit.settings import resolve; from i2vkit.runtime.loader import Loader; "
        "loaded = Loader('wan-demo-a14b-fast', resolve(), device='cpu').get(); "
        "print(loaded.options['lora'])"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         env={**env, "HF_HUB_OFFLINE": "1"}, timeout=300)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    assert "i2vkit/wan-demo-a14b-lora fused into transformer and transformer_2" in run.stdout
    assert not (tmp_path / "home" / "models").exists()  # nothing was built locally
