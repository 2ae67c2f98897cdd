"""The build plan and `--dry-run`: no engine, no network, every mirror URL from the catalogue."""

from __future__ import annotations

import json
import socket

import pytest

from i2vkit import catalogue as models
from i2vkit.advice import choosable
from i2vkit.cli.images import plan_lines
from i2vkit.errors import UnknownNameError
from i2vkit.images.build import build_image
from i2vkit.images.plan import make_plan
from i2vkit.mirrors import render
from i2vkit.mirrors.catalogue import load
from i2vkit.mirrors.choose import choose
from i2vkit.settings import resolve
from tests.helpers.invoke import run_invoke

TOKEN = "hf_plan_test_SECRET_0123456789"


@pytest.fixture
def no_network(monkeypatch):
    """Any connection attempt fails the test: the dry run must not touch the network."""

    def refuse(self, address):
        raise AssertionError(f"the dry run tried to connect to {address}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)


def _dry_run(environ, **kw) -> str:
    """The plan as `build-image --dry-run` prints it; nothing else may happen."""
    lines: list[str] = []
    result = build_image(
        resolve({}, {}, environ),
        kw.pop("model", "i2vgen-xl"),
        kw.pop("mirror", "tuna"),
        dry_run=True,
        show=lambda plan: lines.extend(plan_lines(plan)),
        environ=environ,
        **kw,
    )
    assert result is None
    return "\n".join(lines)


def test_dry_run_prints_the_full_plan_without_network_or_engine(no_network, tmp_path):
    environ = {"DOCKER_HOST": f"unix://{tmp_path}/no-such.sock", "HF_HOME": str(tmp_path)}
    text = _dry_run(environ, cuda="cu126")
    tuna = choose(load(), "tuna", "cu126")
    for url in (tuna.url("pypi"), tuna.url("torch"), tuna.url("hf"), tuna.url("debian")):
        assert url in text
    assert "https://pypi.tuna.tsinghua.edu.cn/simple" in text
    assert "https://mirrors.aliyun.com/pytorch-wheels/cu126" in text  # tuna has no torch
    assert "https://hf-mirror.com" in text  # tuna has no hf
    for stage in ("base", "env", "weights", "final"):
        assert f" {stage} " in text
    assert "debian:bookworm-slim" in text
    assert "unet/diffusion_pytorch_model.fp16.safetensors" in text
    assert "expected size  about" in text
    assert "io.i2vkit.lock.hash" in text


def test_build_args_are_rendered_by_the_mirror_catalogue():
    plan = make_plan(resolve({}, {}, {}), "i2vgen-xl", "aliyun", cuda="cu130")
    mplan = choose(load(), "aliyun", "cu130")
    for key, value in render.docker_build_args(mplan).items():
        assert plan.build_args[key] == value
    assert plan.build_args["APT_SOURCES"] == render.apt_sources(mplan, "debian", "bookworm")
    config = json.loads(plan.build_args["MIRROR_CONFIG"])["mirrors"]["image"]
    assert config["torch"] == {
        "url": "https://mirrors.aliyun.com/pytorch-wheels/{variant}",
        "layout": "find-links",
        "variants": ["cu130"],
    }
    assert plan.labels["io.i2vkit.torch.variant"] == "cu130"
    assert plan.network_mode is None  # nothing on loopback: the default network


def test_loopback_mirrors_build_with_host_networking():
    custom = {"lo": {"pypi": {"url": "http://127.0.0.1:9/simple"}}}
    plan = make_plan(resolve({}, {}, {}), "demo", "lo", cuda="cpu", custom_mirrors=custom)
    assert plan.build_args["PIP_INDEX_URL"] == "http://127.0.0.1:9/simple"
    assert plan.network_mode == "host"
    assert any("lo offers no torch" in note for note in plan.notes)


def test_token_is_never_in_the_plan(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)  # huggingface_hub.get_token reads it at the call
    environ = {"HF_HOME": str(tmp_path)}
    text = _dry_run(environ, model="demo", mirror="default", cuda="cpu")
    assert TOKEN not in text
    assert "HF token    HF_TOKEN" in text
    plan = make_plan(
        resolve({}, {}, environ), "demo", "default", cuda="cpu", token_source="HF_TOKEN"
    )
    assert TOKEN not in json.dumps(plan.to_dict())
    assert plan.network_mode == "host"  # the weights step reads the token over loopback


def test_json_plan():
    done = run_invoke("build-image", "--dry-run", "--json", "--model", "demo", "--cuda", "cpu")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["build_args"]["TORCH_VARIANT"] == "cpu"
    assert [s["name"] for s in data["stages"]] == ["base", "env", "weights", "final"]


def test_unknown_names_list_the_known_ones():
    with pytest.raises(UnknownNameError, match="cu126"):
        make_plan(resolve({}, {}, {}), "demo", "default", cuda="cu118")
    with pytest.raises(UnknownNameError, match="i2vgen-xl"):
        make_plan(resolve({}, {}, {}), "nope", "default", cuda="cpu")
    with pytest.raises(UnknownNameError, match="tuna"):
        make_plan(resolve({}, {}, {}), "demo", "tuan", cuda="cpu")


def test_choosable_variants_follow_the_torch_table():
    table = models.torch_variants()
    assert table.torch == "2.13.0"
    assert choosable(table) == ("cpu", "cu126", "cu129", "cu130", "cu132")


def test_no_weights_plan():
    plan = make_plan(resolve({}, {}, {}), "i2vgen-xl", "default", cuda="cpu", no_weights=True)
    assert plan.build_args["FETCH_WEIGHTS"] == "0"
    assert plan.stages[2].does.startswith("skipped")
    assert plan.expected_bytes < 2e9


def test_invoke_build_image_dry_run():
    done = run_invoke("build-image", "--dry-run", "--mirror", "tuna", "--model", "i2vgen-xl")
    assert done.returncode == 0, done.stderr
    assert "https://pypi.tuna.tsinghua.edu.cn/simple" in done.stdout
    assert "expected size" in done.stdout
    assert done.stdout.rstrip().endswith("dry run: nothing was built")


def test_a_cluster_image_installs_the_lock_with_ray(no_network):
    plain = make_plan(resolve({}, {}, {}), "demo", "default", cuda="cpu")
    ray = make_plan(resolve({}, {}, {}), "demo", "default", cuda="cpu", cluster=True)
    assert plain.build_args["LOCK"] == "env/requirements/runtime.txt"
    assert ray.build_args["LOCK"] == "env/requirements/cluster.txt"
    assert ray.build_args["LOCK_HASH"] != plain.build_args["LOCK_HASH"]
    assert ray.labels["io.i2vkit.cluster"] == "ray" and plain.labels["io.i2vkit.cluster"] == "none"
    assert ray.tag.endswith("-cpu-ray") and plain.tag.endswith("-cpu")
    assert ray.expected_bytes > plain.expected_bytes
    assert any("--entrypoint /opt/i2vkit/env/bin/ray" in note for note in ray.notes)
    assert "--lock env/requirements/cluster.txt" in ray.stages[1].does
