"""Real stand-ins for the image tests: Debian's dockerd on private paths, a debootstrap base
image, pypiserver over the wheels the lockfile pins (torch's CPU build from a flat page, as
Aliyun serves it), all on loopback, reached by the build with host networking.

Slow things are cached across sessions under ~/.cache/i2vkit-test (or $I2VKIT_TEST_CACHE): the
debootstrap tarball, the wheelhouse (keyed by the lockfile's hash), and dockerd's data root,
so a second session starts from a warm layer cache. A missing tool or a stand-in that does not
start is an error naming the fix, never a skip; the tools are checked before anything slow
starts. Processes are stopped by their own PID after checking /proc/PID/cmdline.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from i2vkit import tools
from tests.fixtures.mirror_servers import signal_if_ours, wait_until

ROOT = Path(__file__).resolve().parents[2]
# The mirrors' URLs are build args: fixed ports keep them, and so the layer cache, the same from
# one session to the next (a busy port falls back to a free one: correct, only colder).
PORTS = {"pypi": 47871, "torch": 47872, "hf": 47873}
BASE_TAG = "i2vkit-test/bookworm-minbase:latest"
LOCK = ROOT / "env" / "requirements" / "runtime.txt"


def cache_root() -> Path:
    # not XDG_CACHE_HOME: the autouse clean_environ points that at a per-test folder
    root = Path(os.environ.get("I2VKIT_TEST_CACHE") or Path.home() / ".cache" / "i2vkit-test")
    root.mkdir(parents=True, exist_ok=True)
    return root


@contextlib.contextmanager
def _locked(path: Path):
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


@pytest.fixture(scope="session")
def dockerd():
    """A real Docker daemon for this session; its data root persists across sessions (the
    layer cache) unless another session holds it, then a fresh one is used."""
    if os.geteuid() != 0:
        pytest.fail("the image tests run dockerd, which needs root here (no rootless setup)")
    tools.system("dockerd", "docker.io")
    tools.system("debootstrap", "debootstrap")
    # short paths: unix sockets (and containerd's shims under exec-root) have a 108-byte limit
    scratch = Path(tempfile.mkdtemp(prefix="i2vkd-", dir="/tmp"))
    lock = open(cache_root() / "dockerd.lock", "w")  # noqa: SIM115 - held for the session
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        data = cache_root() / "docker-data"
    except BlockingIOError:
        data = scratch / "data"
    daemon = Dockerd(data, scratch)
    try:
        if not daemon.wait():
            tail = daemon.log.read_text(errors="replace")[-1500:]
            pytest.fail(f"dockerd did not start on private paths: {tail}")
        yield daemon
    finally:
        daemon.stop()
        lock.close()
        _unmount_under(scratch)  # dockerd leaves exec/netns/default mounted
        shutil.rmtree(scratch, ignore_errors=True)


def _unmount_under(folder: Path) -> None:
    mounts = Path("/proc/mounts").read_text().splitlines()
    points = [line.split()[1] for line in mounts if line.split()[1].startswith(f"{folder}/")]
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", point], capture_output=True, check=False)


@pytest.fixture(scope="session")
def client(dockerd):
    import docker

    client = docker.DockerClient(base_url=dockerd.host, timeout=1800)
    yield client
    # The data root persists as the layer cache. No image prune: the env and weights stages'
    # images are untagged leaves ("dangling") that the next session's build reuses. To reset:
    # rm -rf ~/.cache/i2vkit-test/docker-data
    with contextlib.suppress(Exception):
        client.containers.prune()
    client.close()


def _rootfs_tarball() -> Path:
    tarball = cache_root() / "bookworm-minbase.tar"
    with _locked(cache_root() / "rootfs.lock"):
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


@pytest.fixture(scope="session")
def base_image(client) -> str:
    """Debian bookworm minbase with python3, venv and CA certificates, imported into dockerd."""
    from docker.errors import ImageNotFound

    try:
        client.images.get(BASE_TAG)
    except ImageNotFound:
        with open(_rootfs_tarball(), "rb") as data:
            repository, tag = BASE_TAG.rsplit(":", 1)
            client.api.import_image_from_data(data.read(), repository=repository, tag=tag)
    return BASE_TAG


def _lock_key() -> str:
    return hashlib.sha256(LOCK.read_bytes()).hexdigest()[:12]


@pytest.fixture(scope="session")
def wheelhouse() -> Path:
    """Every wheel the lockfile pins for CPython 3.11 on x86_64, plus torch 2.13.0+cpu (from
    the host's find-links folder), its dependencies, and what the bootstrap venv needs (uv,
    setuptools). Downloaded once per lockfile."""
    folder = cache_root() / f"wheels-{_lock_key()}"
    with _locked(cache_root() / "wheels.lock"):
        if folder.is_dir() and any(folder.glob("torch-2.13.0+cpu-*.whl")):
            return folder
        tmp = folder.with_suffix(".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        platforms = [
            "manylinux_2_28_x86_64",
            "manylinux_2_17_x86_64",
            "manylinux2014_x86_64",
            "manylinux_2_5_x86_64",
            "manylinux1_x86_64",
            "linux_x86_64",
            "any",
        ]
        pin = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "--no-deps",
            "--only-binary=:all:",
            "--python-version",
            "3.11",
            "-d",
            str(tmp),
            "-r",
            str(LOCK),
        ]
        for platform in platforms:
            pin += ["--platform", platform]
        # torch 2.13.0 with its dependencies: the host pip's find-links has the CPU build
        extra = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "-d",
            str(tmp),
            "torch==2.13.0",
            "uv",
            "setuptools",
            "wheel",
        ]
        for command in (pin, extra):
            done = subprocess.run(command, capture_output=True, text=True, timeout=1200)
            if done.returncode != 0:
                pytest.fail(f"cannot download the wheelhouse: {done.stderr[-600:]}")
        if not any(tmp.glob("torch-2.13.0+cpu-*.whl")):
            pytest.fail(
                "torch 2.13.0+cpu did not download: the image tests need the CPU build from "
                "the host pip's configuration (a find-links folder, or the PyTorch CPU index)"
            )
        tmp.replace(folder)
    return folder


def _port(preferred: int) -> int:
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


@pytest.fixture(scope="session")
def mirror(wheelhouse, tmp_path_factory):
    """The custom mirror `loop`: pypiserver over the wheelhouse, a flat torch page per variant
    (the Aliyun layout), and an HF endpoint that refuses (the demo model is built locally)."""
    exe = tools.script("pypi-server", "pypiserver")
    logs = tmp_path_factory.mktemp("mirror-logs")
    pages = tmp_path_factory.mktemp("torch-pages")
    (pages / "cpu").mkdir()
    for wheel in wheelhouse.glob("torch-2.13.0+cpu-*.whl"):
        (pages / "cpu" / wheel.name).symlink_to(wheel)
    pypi_port, torch_port = _port(PORTS["pypi"]), _port(PORTS["torch"])
    pypi = Served(
        [
            exe,
            "run",
            "-p",
            str(pypi_port),
            "-i",
            "127.0.0.1",
            "-a",
            ".",
            "-P",
            ".",
            str(wheelhouse),
        ],
        pypi_port,
        "pypi-server",
        logs / "pypi.log",
    )
    torch = Served(
        [
            sys.executable,
            "-m",
            "http.server",
            str(torch_port),
            "--bind",
            "127.0.0.1",
            "--directory",
            str(pages),
        ],
        torch_port,
        "http.server",
        logs / "torch.log",
    )
    custom = {
        "loop": {
            "pypi": {"url": f"{pypi.url}/simple", "files": f"{pypi.url}/packages"},
            "torch": {
                "url": f"{torch.url}/{{variant}}/",
                "layout": "find-links",
                "variants": ["cpu"],
            },
            "hf": {"url": f"http://127.0.0.1:{_port(PORTS['hf'])}"},  # nothing listens there
        }
    }
    yield custom
    torch.stop()
    pypi.stop()
