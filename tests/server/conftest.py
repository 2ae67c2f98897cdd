"""A real `invoke serve` process on loopback with the tiny demo model."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`invoke serve` in its own process; stopped by PID (checked against /proc) at the end."""

    def __init__(self, home: Path, *args: str, env: dict[str, str] | None = None,
                 host: str = "127.0.0.1") -> None:  # fmt: skip
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = home / f"server-{self.port}.log"
        self.args = ["--model", "demo", "--host", host, "--port", str(self.port), *args]
        self.env = {**os.environ, "I2VKIT_HOME": str(home), "PYTHONUNBUFFERED": "1",
                    **(env or {})}  # fmt: skip
        self.proc: subprocess.Popen | None = None

    def start(self, wait: bool = True) -> Server:
        out = self.log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "invoke", "serve", *self.args],
            cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc and self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}:\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"server not ready in {timeout} s:\n{self.log.read_text()}")

    def _alive(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            return False
        try:  # PIDs wrap: make sure it is still our server before signalling
            cmdline = Path(f"/proc/{self.proc.pid}/cmdline").read_bytes()
        except OSError:
            return False
        return b"serve" in cmdline and str(self.port).encode() in cmdline

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self._alive():
            assert self.proc is not None
            os.kill(self.proc.pid, sig)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self._alive():
            assert self.proc is not None
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


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
               env={"I2VKIT_STARTUP_HOOK": "tests.server.faults:install"}).start()  # fmt: skip
    yield s
    s.stop()
