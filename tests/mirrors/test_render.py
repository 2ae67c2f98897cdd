"""Rendered configuration, read back by the real tools, written inside the environment only."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import yaml

from i2vkit import tools
from i2vkit.cli.mirrors import run
from i2vkit.mirrors import render
from i2vkit.mirrors.catalogue import load
from i2vkit.mirrors.choose import choose
from tests.helpers.mirrors import VARIANT, catalogue_for, installed


def _host_free_env(tmp_path) -> dict[str, str]:
    """No PIP_*/UV_* variables and a home of its own, but config files still read: the tool
    must find the environment's own file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    return env | {"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "config")}


def test_pip_reads_the_pip_conf_written_inside_the_env(stand_ins, venv, tmp_path):
    catalogue = catalogue_for({"aliyun": stand_ins["urls"]["aliyun"]}, stand_ins["torch"].url)
    plan = choose(catalogue, "aliyun", VARIANT)
    written = render.write(render.config_files(plan, venv))
    assert all(path.parent == venv for path in written)
    aliyun = stand_ins["servers"]["aliyun"]
    before = len(aliyun.fetched())
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", "-q", "beta"],
        env=_host_free_env(tmp_path), check=True, timeout=120,
    )  # fmt: skip
    assert aliyun.fetched()[before:] == ["beta-1.0-py3-none-any.whl"]
    assert "beta" in installed(venv)


def test_uv_reads_the_uv_toml_with_the_explicit_flat_torch_index(stand_ins, venv, tmp_path):
    catalogue = catalogue_for({"aliyun": stand_ins["urls"]["aliyun"]}, stand_ins["torch"].url)
    plan = choose(catalogue, "aliyun", VARIANT)
    render.write(render.config_files(plan, venv))
    aliyun = stand_ins["servers"]["aliyun"]
    before = len(aliyun.fetched())
    env = _host_free_env(tmp_path) | {"UV_CACHE_DIR": str(tmp_path / "uv-cache")}
    python = venv / "bin" / "python"
    subprocess.run(
        [tools.uv(), "pip", "install", "--config-file", venv / "uv.toml", "--python", python,
         "beta"],
        env=env, check=True, timeout=120, capture_output=True,
    )  # fmt: skip
    assert aliyun.fetched()[before:] == ["beta-1.0-py3-none-any.whl"]


def test_condarc_maps_defaults_and_custom_channels():
    plan = choose(load(), "tuna")
    data = yaml.safe_load(render.condarc(plan))
    assert data["default_channels"] == ["https://mirrors.tuna.tsinghua.edu.cn/anaconda/pkgs/main"]
    assert set(data["custom_channels"]) == {"conda-forge", "pytorch"}
    assert data["custom_channels"]["conda-forge"].endswith("/anaconda/cloud")


def test_torch_step_for_a_simple_index_uses_that_index_alone():
    plan = choose(load(), "default", "cu130")
    assert render.pip_torch_args(plan) == ["--index-url", "https://download.pytorch.org/whl/cu130"]
    assert "explicit = true" in render.uv_toml(plan)


def test_daemon_json_keeps_the_other_settings():
    plan = choose(load(), "tuna")
    merged = json.loads(render.daemon_json(plan, {"data-root": "/srv/docker", "debug": True}))
    assert merged == {"data-root": "/srv/docker", "debug": True, "registry-mirrors": []}


def test_global_scope_is_only_the_users_files(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    changes = render.config_files(choose(load(), "tuna"), None, scope="global")
    paths = {c.what: c.path for c in changes}
    assert paths["pip"] == tmp_path / "config" / "pip" / "pip.conf"
    assert paths["conda"] == tmp_path / ".condarc"
    assert paths["docker"] == render.DAEMON_JSON


def test_show_tuna_prints_every_tool_s_configuration(capsys):
    data = run(load(), show="tuna", variant="cu126")
    out = capsys.readouterr().out
    for where in ("pip:", "uv:", "conda:", "hf:", "docker:", "apt:"):
        assert f"--- {where}" in out
    assert "index-url = https://pypi.tuna.tsinghua.edu.cn/simple\n" in out
    assert "HF_ENDPOINT=https://hf-mirror.com\n" in out
    assert data["picks"]["hf"]["note"] and "using hf-mirror" in out
    assert "https://mirrors.aliyun.com/pytorch-wheels/cu126" in out
