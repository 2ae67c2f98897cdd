"""A real `invoke serve` process on loopback with the tiny demo model."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.helpers.server import Server


@pytest.fixture(scope="session")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from i2vkit.runtime import twins

    home = tmp_path_factory.mktemp("server-demo-home")
    twins.save(home / "models" / "demo", "i2vgen-xl")
    return home


@pytest.fixture
def fresh_home(demo_home: Path, tmp_path: Path) -> Path:
    home = tmp_path / "home"
    shutil.copytree(demo_home, home)
    return home


@pytest.fixture
def start_server(fresh_home: Path):
    """Start servers on this test's home; all are stopped at the end."""
    started: list[Server] = []

    def start(*args: str, wait: bool = True, **kw) -> Server:
        server = Server(fresh_home, *args, **kw).start(wait)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, demo_home: Path):
    """One shared server for the tests that only submit and read."""
    home = tmp_path_factory.mktemp("shared-home")
    shutil.copytree(demo_home, home, dirs_exist_ok=True)
    s = Server(home, "--queue-size", "8", "--max-upload-mb", "2",
               env={"I2VKIT_STARTUP_HOOK": "tests.helpers.faults:install"}).start()  # fmt: skip
    yield s
    s.stop()
