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
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from i2vkit import tools
from tests.helpers.cache import cache_root
from tests.helpers.docker import (
    Dockerd,
    Served,
    locked,
    preferred_port,
    rootfs_tarball,
    unmount_under,
)

ROOT = Path(__file__).resolve().parents[2]
# The mirrors' URLs are build args: fixed ports keep them, and so the layer cache, the same from
# one session to the next (a busy port falls back to a free one: correct, only colder).
PORTS = {"pypi": 47871, "torch": 47872, "hf": 47873}
BASE_TAG = "i2vkit-test/bookworm-minbase:latest"
LOCK = ROOT / "env" / "requirements" / "runtime.txt"


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
        unmount_under(scratch)  # dockerd leaves exec/netns/default mounted
        shutil.rmtree(scratch, ignore_errors=True)


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


@pytest.fixture(scope="session")
def base_image(client) -> str:
    """Debian bookworm minbase with python3, venv and CA certificates, imported into dockerd."""
    from docker.errors import ImageNotFound

    try:
        client.images.get(BASE_TAG)
    except ImageNotFound:
        with open(rootfs_tarball(), "rb") as data:
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
    with locked(cache_root() / "wheels.lock"):
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
    pypi_port, torch_port = preferred_port(PORTS["pypi"]), preferred_port(PORTS["torch"])
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
            # nothing listens there: the demo model is built locally
            "hf": {"url": f"http://127.0.0.1:{preferred_port(PORTS['hf'])}"},
        }
    }
    yield custom
    torch.stop()
    pypi.stop()
