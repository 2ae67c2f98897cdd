"""Without a Docker engine: the error says where the client looked and what to do. And the
token server answers once."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from i2vkit.errors import EngineUnreachableError
from i2vkit.images import engine
from i2vkit.images.build import build_image
from i2vkit.images.run import run_image
from i2vkit.images.secrets import TokenServer
from i2vkit.settings import resolve
from tests.helpers.servers import free_port


def test_no_engine_at_docker_host(tmp_path):
    address = f"unix://{tmp_path}/docker.sock"
    with pytest.raises(EngineUnreachableError) as caught:
        engine.connect({"DOCKER_HOST": address})
    message = str(caught.value)
    assert address in message and "DOCKER_HOST" in message
    assert "start the daemon" in message
    assert isinstance(caught.value, ConnectionError)


def test_without_docker_host_the_client_looks_at_the_default_socket():
    """With nothing answering there, the message says where it looked and that DOCKER_HOST is
    unset; a machine whose engine runs at the default socket gets a working client instead."""
    assert engine.where({}) == (engine.DEFAULT_SOCKET, "the default socket; DOCKER_HOST is not set")
    try:
        client = engine.connect({})
    except EngineUnreachableError as error:
        assert re.search(r"/var/run/docker.sock.*DOCKER_HOST is not", str(error)), str(error)
    else:
        assert client.ping()


def test_build_image_prints_the_plan_then_names_the_missing_engine(tmp_path):
    shown = []
    environ = {"DOCKER_HOST": f"unix://{tmp_path}/docker.sock", "HF_HOME": str(tmp_path)}
    with pytest.raises(EngineUnreachableError):
        build_image(
            resolve({}, {}, environ), "demo", "default", cuda="cpu", show=shown.append,
            environ=environ,
        )  # fmt: skip
    assert [plan.model for plan in shown] == ["demo"]  # the plan came first


def test_run_image_needs_a_token_or_insecure(tmp_path):
    from i2vkit.errors import ConfigError

    with pytest.raises(ConfigError, match="--insecure"):
        run_image("i2vkit/demo:x", environ={"DOCKER_HOST": f"unix://{tmp_path}/d.sock"})


def test_token_server_answers_once():
    port = free_port()
    with TokenServer("hf_once", port=port) as server:
        assert urllib.request.urlopen(server.url, timeout=5).read() == b"hf_once"
        with pytest.raises(urllib.error.HTTPError) as again:
            urllib.request.urlopen(server.url, timeout=5)
        assert again.value.code == 410


def _find_token(env: dict[str, str]) -> list[str]:
    """find_token() in a fresh interpreter: huggingface_hub fixes its token file's path (from
    HF_HOME, HF_TOKEN_PATH) when it is imported."""
    code = "from i2vkit.images.secrets import find_token; print(find_token())"
    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env},
                          capture_output=True, text=True, check=True)  # fmt: skip
    return done.stdout.strip()


def test_find_token_is_huggingface_hubs_own_lookup(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    assert _find_token({"HF_HOME": str(tmp_path)}) == "None"
    (tmp_path / "token").write_text("hf_file\n")  # where `hf auth login` writes it
    found = _find_token({"HF_HOME": str(tmp_path)})
    assert "hf_file" in found and f"token file ({tmp_path}/token)" in found
    other = tmp_path / "other"
    other.write_text("hf_path")
    assert "'hf_path'" in _find_token({"HF_TOKEN_PATH": str(other), "HF_HOME": str(tmp_path)})
    env_first = _find_token({"HF_TOKEN": "hf_env", "HF_HOME": str(tmp_path)})
    assert env_first == "('hf_env', 'HF_TOKEN')"
