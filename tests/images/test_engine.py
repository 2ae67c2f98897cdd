"""Without a Docker engine: the error says where the client looked and what to do. And the
token server answers once."""

from __future__ import annotations

import io
import re
import urllib.error
import urllib.request

import pytest
from rich.console import Console

from i2vkit.errors import EngineUnreachableError
from i2vkit.images import commands, engine
from i2vkit.images.secrets import TokenServer, find_token
from i2vkit.settings import resolve
from tests.fixtures.mirror_servers import free_port


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
    out = io.StringIO()
    environ = {"DOCKER_HOST": f"unix://{tmp_path}/docker.sock", "HF_HOME": str(tmp_path)}
    with pytest.raises(EngineUnreachableError):
        commands.build_image(
            resolve({}, {}, environ),
            "demo",
            "default",
            cuda="cpu",
            console=Console(file=out, width=200),
            environ=environ,
        )
    assert "build args" in out.getvalue()


def test_run_image_needs_a_token_or_insecure(tmp_path):
    from i2vkit.errors import ConfigError

    with pytest.raises(ConfigError, match="--insecure"):
        commands.run_image("i2vkit/demo:x", environ={"DOCKER_HOST": f"unix://{tmp_path}/d.sock"})


def test_token_server_answers_once():
    port = free_port()
    with TokenServer("hf_once", port=port) as server:
        assert urllib.request.urlopen(server.url, timeout=5).read() == b"hf_once"
        with pytest.raises(urllib.error.HTTPError) as again:
            urllib.request.urlopen(server.url, timeout=5)
        assert again.value.code == 410


def test_find_token_follows_huggingface_hub(tmp_path):
    assert find_token({"HF_HOME": str(tmp_path)}) is None
    (tmp_path / "token").write_text("hf_file\n")
    assert find_token({"HF_HOME": str(tmp_path)}) == (
        "hf_file",
        f"HF_HOME/token ({tmp_path}/token)",
    )
    path = tmp_path / "other"
    path.write_text("hf_path")
    assert find_token({"HF_TOKEN_PATH": str(path), "HF_HOME": str(tmp_path)})[0] == "hf_path"
    assert find_token({"HF_TOKEN": "hf_env", "HF_HOME": str(tmp_path)}) == ("hf_env", "HF_TOKEN")
