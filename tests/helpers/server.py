"""A real `invoke serve` process on loopback, stopped by its own PID."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.helpers.invoke import ROOT
from tests.helpers.servers import free_port


class Server:
    """`invoke serve` in its own process; stopped by PID (checked against /proc) at the end."""

    def __init__(self, home: Path, *args: str, env: dict[str, str] | None = None,
                 host: str = "127.0.0.1", device: str | None = "cpu",
                 model: str = "demo", file_limit: int | None = None) -> None:  # fmt: skip
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = home / f"server-{self.port}.log"
        # the CPU explicitly: on a machine with a GPU the default would be cuda:0
        # (a Ray cluster's workers take the device Ray gives them: device=None)
        where = ["--device", device] if device else []
        self.args = ["--model", model, *where, "--host", host, "--port", str(self.port),
                     *args]  # fmt: skip
        self.env = {**os.environ, "I2VKIT_HOME": str(home), "PYTHONUNBUFFERED": "1",
                    **(env or {})}  # fmt: skip
        self.proc: subprocess.Popen | None = None
        self.file_limit = file_limit  # RLIMIT_FSIZE: no file it writes grows past this

    def start(self, wait: bool = True) -> Server:
        out = self.log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "invoke", "serve", *self.args],
            cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT,
            preexec_fn=self._limit if self.file_limit else None,
        )  # fmt: skip
        if wait:
            self.wait_ready()
        return self

    def _limit(self) -> None:
        """A disk that is full for files past `file_limit` bytes: writes fail with EFBIG
        (Python ignores SIGXFSZ), as they would with ENOSPC, with no mount or privilege."""
        import resource

        limit = self.file_limit or resource.RLIM_INFINITY
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    def wait_ready(self, timeout: float = 180) -> None:  # two workers or Ray, on 2 busy cores
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


def model_server(home: Path, model: str, *args: str, env: dict[str, str] | None = None,
                 host: str = "127.0.0.1") -> Server:  # fmt: skip
    """A `Server` (not started) serving `model` instead of `demo`; the same flags otherwise."""
    server = Server(home, *args, env=env, host=host)
    server.args[server.args.index("--model") + 1] = model
    return server
