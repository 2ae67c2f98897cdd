"""Loopback stand-ins for `invoke setup`: a pypiserver PyPI mirror of tiny wheels, a flat
find-links torch page holding a stand-in `torch==2.13.0+cpu`, and invoke configuration that
names them as a custom mirror."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from tests.helpers.config import invoke_config
from tests.helpers.servers import PypiServer, StaticServer, make_wheel


def wheel_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="session")
def small_sources(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("setup-sources")
    wheels = root / "wheels"
    wheels.mkdir()
    alpha = make_wheel(wheels, "alpha", "1.0", ["beta"])
    beta = make_wheel(wheels, "beta", "1.0")
    gamma = make_wheel(wheels, "gamma", "1.0", pad=4_000_000)  # big enough to stop mid-way
    torch_page = root / "torch"
    (torch_page / "cpu").mkdir(parents=True)
    make_wheel(torch_page / "cpu", "torch", "2.13.0+cpu")
    locks = root / "locks"
    locks.mkdir()
    entries = {w: f"{w.name.split('-')[0]}==1.0 --hash=sha256:{wheel_hash(w)}"
               for w in (alpha, beta, gamma)}  # fmt: skip
    (locks / "small.txt").write_text(f"{entries[alpha]}\n{entries[beta]}\n")
    (locks / "bigger.txt").write_text(f"{entries[alpha]}\n{entries[beta]}\n{entries[gamma]}\n")
    pypi = PypiServer(wheels, root / "pypiserver.log").wait()
    page = StaticServer(torch_page)
    yield {"pypi": pypi, "torch": page, "locks": locks, "root": root}
    pypi.stop()
    page.stop()


@pytest.fixture(scope="session")
def tampered_pypi(small_sources, tmp_path_factory: pytest.TempPathFactory) -> PypiServer:
    """A real pypiserver whose alpha 1.0 is another file than the one the locks pin (its beta
    is the same file as the good mirror's)."""
    folder = tmp_path_factory.mktemp("tampered")
    make_wheel(folder, "alpha", "1.0", ["beta"], pad=64)
    beta = small_sources["root"] / "wheels" / "beta-1.0-py3-none-any.whl"
    (folder / beta.name).write_bytes(beta.read_bytes())
    server = PypiServer(folder, folder.parent / "tampered.log").wait()
    yield server
    server.stop()


@pytest.fixture
def setup_env(small_sources, tmp_path: Path) -> dict[str, str]:
    """Environment for `invoke setup` subprocesses: own home and caches, the stand-in mirror,
    and none of the host's pip configuration (no wheelhouse, no extra index)."""
    config = invoke_config(tmp_path / "invoke.yaml", small_sources["pypi"].url,
                           small_sources["torch"].url, None)  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env.update({
        "INVOKE_RUNTIME_CONFIG": str(config),
        "I2VKIT_HOME": str(tmp_path / "home"),
        "UV_CACHE_DIR": str(tmp_path / "uv-cache"),
        "XDG_CONFIG_HOME": str(tmp_path / "user-config"),  # where --global-config writes
        "HOME": str(tmp_path / "user-home"),  # ~/.condarc too: never the real home
        "PIP_CONFIG_FILE": os.devnull,
    })  # fmt: skip
    return env
