"""Loopback stand-ins for the mirrors, and catalogues that point at them.

One set of servers per session for the tests that only read from them; the failover tests
start their own, since they stop one mid-install.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from i2vkit.mirrors.catalogue import Catalogue
from tests.helpers.mirrors import SLOW_S, VARIANT, catalogue_for
from tests.helpers.servers import (
    DelayProxy,
    PypiServer,
    SilentSocket,
    StaticServer,
    closed_port,
    make_wheel,
)


@pytest.fixture(scope="session")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """alpha needs beta and gamma; gamma is ~300 KiB so its download takes measurable time."""
    folder = tmp_path_factory.mktemp("wheels")
    make_wheel(folder, "alpha", "1.0", ["beta", "gamma"])
    make_wheel(folder, "beta", "1.0")
    make_wheel(folder, "gamma", "1.0", pad=300_000)
    make_wheel(folder, "needs_missing", "1.0", ["no-such-project"])
    return folder


@pytest.fixture(scope="session")
def torch_page(tmp_path_factory: pytest.TempPathFactory) -> StaticServer:
    """A flat find-links page per variant holding a stand-in torch wheel that needs beta."""
    root = tmp_path_factory.mktemp("pytorch-wheels")
    (root / VARIANT).mkdir()
    make_wheel(root / VARIANT, "torch", f"2.13.0+{VARIANT}", ["beta"])
    server = StaticServer(root)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def portal(tmp_path_factory: pytest.TempPathFactory) -> StaticServer:
    """Answers every page with 200 and HTML that is not an index (a captive portal)."""
    root = tmp_path_factory.mktemp("portal")
    page = "<html><body><h1>Welcome</h1><a href='/login'>log in</a></body></html>"
    for where in ("simple/alpha", VARIANT):
        (root / where).mkdir(parents=True)
        (root / where / "index.html").write_text(page)
    server = StaticServer(root)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def stand_ins(tmp_path_factory, wheels, torch_page, portal):
    """tuna: slow (a delaying proxy), aliyun: fast (+ a flat torch page), default: a bit slow,
    ustc: closed port, sjtu: a name that does not resolve, hung: accepts, never answers,
    portal: answers, but not as an index."""
    logs = tmp_path_factory.mktemp("logs")
    servers = {n: PypiServer(wheels, logs / f"{n}.log") for n in ("tuna", "aliyun", "default")}
    for server in servers.values():
        server.wait()
    slow = DelayProxy(servers["tuna"].port, SLOW_S)
    medium = DelayProxy(servers["default"].port, SLOW_S / 2)
    silent = SilentSocket()
    urls = {
        "tuna": slow.url,
        "aliyun": servers["aliyun"].url,
        "default": medium.url,
        "ustc": f"http://127.0.0.1:{closed_port()}",
        "sjtu": "https://mirror.sjtu.invalid",
        "hung": silent.url,
        "portal": portal.url,
    }
    yield {"servers": servers, "urls": urls, "torch": torch_page, "slow": slow}
    for s in (slow, medium, silent):
        s.stop()
    for server in servers.values():
        server.stop()


@pytest.fixture(scope="session")
def alpha_lock(tmp_path_factory: pytest.TempPathFactory, wheels: Path) -> Path:
    """A lockfile pinning `wheels`' alpha by its sha256 (install it with --no-deps)."""
    digest = hashlib.sha256((wheels / "alpha-1.0-py3-none-any.whl").read_bytes()).hexdigest()
    lock = tmp_path_factory.mktemp("lock") / "alpha.txt"
    lock.write_text(f"alpha==1.0 --hash=sha256:{digest}\n")
    return lock


@pytest.fixture(scope="session")
def tampered(tmp_path_factory: pytest.TempPathFactory):
    """A real pypiserver whose alpha 1.0 is another file than the one `alpha_lock` pins."""
    folder = tmp_path_factory.mktemp("tampered")
    make_wheel(folder, "alpha", "1.0", ["beta", "gamma"], pad=64)
    server = PypiServer(folder, folder.parent / "tampered.log").wait()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def loopback(stand_ins) -> Catalogue:
    return catalogue_for(stand_ins["urls"], stand_ins["torch"].url)


@pytest.fixture
def venv(tmp_path: Path) -> Path:
    """A fresh, empty virtual environment (no pip in it: installs run pip --python / uv)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", tmp_path / "env"], check=True)
    return tmp_path / "env"


@pytest.fixture
def neutral_env(tmp_path: Path) -> dict[str, str]:
    """The environment for real pip/uv runs with the host's pip configuration kept out."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env |= {"PIP_CONFIG_FILE": os.devnull, "HOME": str(tmp_path / "home")}
    env |= {"XDG_CONFIG_HOME": str(tmp_path / "config"), "UV_NO_CONFIG": "1"}
    env |= {"XDG_CACHE_HOME": str(tmp_path / "cache"), "UV_CACHE_DIR": str(tmp_path / "uvc")}
    return env
