"""Real stand-ins for the image tests: Debian's dockerd on private paths, a debootstrap base
image, and servers on loopback. Slow results are cached across sessions (tests/helpers/cache.py)
under locks, so two sessions never build one cache at once. Processes are stopped by their own
PID after checking /proc/PID/cmdline.

A missing tool or a stand-in that does not start fails the test that needs it, never skips it.
"""

from __future__ import annotations

import contextlib
import fcntl
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from i2vkit import tools
from tests.helpers.cache import cache_root
from tests.helpers.servers import signal_if_ours, wait_until


@contextlib.contextmanager
def locked(path: Path):
    """An exclusive lock on `path` across processes (two sessions building one cache)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class Dockerd:
    """dockerd on private paths; `env` points a client at it."""

    def __init__(self, data: Path, scratch: Path) -> None:
        exe = tools.system("dockerd", "docker.io")
        self.socket = scratch / "docker.sock"
        self.host = f"unix://{self.socket}"
        self.log = scratch / "dockerd.log"
        command = [
            exe,
            "--data-root",
            str(data),
            "--exec-root",
            str(scratch / "exec"),
            "-H",
            self.host,
            "--pidfile",
            str(scratch / "dockerd.pid"),
        ]
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        self.env = {"DOCKER_HOST": self.host}

    def wait(self, timeout: float = 30) -> bool:
        import docker

        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                return False
            with contextlib.suppress(Exception):
                docker.DockerClient(base_url=self.host, timeout=5).ping()
                return True
            time.sleep(0.2)
        return False

    def stop(self) -> None:
        if self.proc.poll() is None and signal_if_ours(self.proc.pid, "dockerd"):
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                signal_if_ours(self.proc.pid, "dockerd", signal.SIGKILL)
                self.proc.wait(timeout=5)


def unmount_under(folder: Path) -> None:
    mounts = Path("/proc/mounts").read_text().splitlines()
    points = [line.split()[1] for line in mounts if line.split()[1].startswith(f"{folder}/")]
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", point], capture_output=True, check=False)


def rootfs_tarball() -> Path:
    tarball = cache_root() / "bookworm-minbase.tar"
    with locked(cache_root() / "rootfs.lock"):
        if tarball.exists():
            return tarball
        debootstrap = tools.system("debootstrap", "debootstrap")
        rootfs = Path(tempfile.mkdtemp(prefix="i2vkit-rootfs-"))
        try:
            subprocess.run(
                [
                    str(debootstrap),
                    "--variant=minbase",
                    "--include=python3,python3-venv,ca-certificates",
                    "bookworm",
                    str(rootfs),
                    "http://deb.debian.org/debian",
                ],
                check=True,
                capture_output=True,
                timeout=900,
            )
            tmp = tarball.with_suffix(".tmp")
            subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tmp), "."], check=True)
            tmp.replace(tarball)
        except subprocess.CalledProcessError as error:
            pytest.fail(f"debootstrap failed: {error.stderr.decode(errors='replace')[-500:]}")
        finally:
            shutil.rmtree(rootfs, ignore_errors=True)
    return tarball


def preferred_port(preferred: int) -> int:
    """`preferred` when it is free, else any free port (correct, only colder for caches)."""
    with contextlib.suppress(OSError), socket.socket() as probe:
        probe.bind(("127.0.0.1", preferred))
        return preferred
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Served:
    """A real server process on loopback (pypi-server, or python's http.server over a folder
    laid out as a flat find-links page), stopped by its own PID."""

    def __init__(self, command: list[str], port: int, marker: str, log: Path) -> None:
        self.port, self.marker = port, marker
        self.url = f"http://127.0.0.1:{port}"
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        if not wait_until(self._accepting, timeout=20):
            self.stop()
            raise RuntimeError(f"{marker} did not start on port {port}: {log.read_text()[-500:]}")

    def _accepting(self) -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2):
            return True
        return False

    def stop(self) -> None:
        if self.proc.poll() is None and signal_if_ours(self.proc.pid, self.marker):
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                signal_if_ours(self.proc.pid, self.marker, signal.SIGKILL)
                self.proc.wait(timeout=5)
