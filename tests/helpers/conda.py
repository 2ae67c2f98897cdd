"""A real conda channel of tiny noarch packages, built at test time, and mirrors serving it.

Packages are hand-made .tar.bz2 archives (info/index.json, info/paths.json, info/files and one
data file), indexed by py-rattler in a subprocess that ends with os._exit(0): rattler's indexer
can crash the interpreter at exit (TESTBED.md). The dependency graph:

    tiny-a 1.0 -> tiny-b >=1, tiny-c        tiny-b 1.0, 2.0 (the solver must pick 2.0)
    tiny-c 0.3 -> tiny-d                    tiny-d 4.1 (~40 KB, so bytes are measurable)

Mirrors are loopback http servers (the catalogue refuses file:// URLs) serving a copy of the
channel under `<url>/anaconda/cloud/conda-forge`, the layout TUNA and Aliyun use.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

CANONICAL_CF = "https://conda.anaconda.org/conda-forge"  # the real catalogue's conda-forge
PACKAGES: tuple[tuple[str, str, tuple[str, ...], int], ...] = (
    ("tiny-a", "1.0", ("tiny-b >=1", "tiny-c"), 0),
    ("tiny-b", "1.0", (), 0),
    ("tiny-b", "2.0", (), 0),
    ("tiny-c", "0.3", ("tiny-d",), 0),
    ("tiny-d", "4.1", (), 40_000),
)
SPEC = """\
channels:
  - conda-forge
platforms:
  - linux-64
  - linux-aarch64
dependencies:
  - tiny-a
  - tiny-b >=1,<3
"""
_INDEX = (
    "import asyncio, os, sys\n"
    "from rattler.index import index_fs\n"
    "asyncio.run(index_fs(sys.argv[1], write_zst=False, write_shards=False))\n"
    "sys.stdout.flush()\n"
    "os._exit(0)\n"
)


def make_package(folder: Path, name: str, version: str, depends=(), pad: int = 0) -> Path:
    """A minimal valid noarch conda package holding share/i2vkit-test/<name>.txt."""
    folder.mkdir(parents=True, exist_ok=True)
    # random bytes do not compress: the archive really is about `pad` bytes
    content = f"{name} {version}\n".encode() + os.urandom(pad)
    rel = f"share/i2vkit-test/{name}.txt"
    index = {
        "name": name, "version": version, "build": "0", "build_number": 0,
        "depends": list(depends), "noarch": "generic", "subdir": "noarch",
        "license": "MIT", "timestamp": 1700000000000,
    }  # fmt: skip
    paths = {
        "paths": [{
            "_path": rel, "path_type": "hardlink",
            "sha256": hashlib.sha256(content).hexdigest(), "size_in_bytes": len(content),
        }],
        "paths_version": 1,
    }  # fmt: skip
    members = {
        "info/index.json": json.dumps(index).encode(),
        "info/paths.json": json.dumps(paths).encode(),
        "info/files": f"{rel}\n".encode(),
        rel: content,
    }
    out = folder / f"{name}-{version}-0.tar.bz2"
    with tarfile.open(out, "w:bz2") as tar:
        for arcname, data in members.items():
            info = tarfile.TarInfo(arcname)
            info.size, info.mtime, info.mode = len(data), 1700000000, 0o644
            tar.addfile(info, io.BytesIO(data))
    return out


def index_channel(channel: Path) -> None:
    subprocess.run([sys.executable, "-c", _INDEX, str(channel)], check=True, timeout=60)
    if not (channel / "noarch" / "repodata.json").is_file():
        raise RuntimeError(f"rattler did not index {channel}")


def build_channel(root: Path, name: str = "conda-forge") -> Path:
    """root/<name>/{noarch,linux-64,linux-aarch64} with repodata; returns the channel folder."""
    channel = root / name
    for package, version, depends, pad in PACKAGES:
        make_package(channel / "noarch", package, version, depends, pad)
    for subdir in ("linux-64", "linux-aarch64"):  # indexed empty: the solver asks for them
        (channel / subdir).mkdir(parents=True, exist_ok=True)
    index_channel(channel)
    return channel


def mirror_tree(channel: Path, root: Path) -> Path:
    """A mirror's copy of `channel`: root/anaconda/cloud/conda-forge (same files)."""
    target = root / "anaconda" / "cloud" / channel.name
    shutil.copytree(channel, target, ignore=shutil.ignore_patterns(".tmp"))
    return root


def conda_mirror(base: str) -> dict[str, Any]:
    return {"conda": {"url": f"{base}/anaconda/pkgs/main", "custom": f"{base}/anaconda/cloud"}}


def catalogue_data(mirrors: dict[str, str]) -> dict[str, Any]:
    """A catalogue whose `default` is the real upstream (so the lockfile's canonical URLs line
    up) and whose other mirrors are the given loopback bases, in the given order."""
    table: dict[str, Any] = {
        "default": {
            "conda": {
                "url": "https://repo.anaconda.com/pkgs/main",
                "custom": "https://conda.anaconda.org",
            }
        }
    }
    table |= {name: conda_mirror(base) for name, base in mirrors.items()}
    return {"order": [*mirrors, "default"], "mirror": table}


SOLVED = {"tiny-a": "1.0", "tiny-b": "2.0", "tiny-c": "0.3", "tiny-d": "4.1"}


def render_explicit(lockfile: Path, platform: str, folder: Path) -> list[str]:
    """conda-lock's own explicit rendering (offline), as URL#md5 lines."""
    subprocess.run(
        [sys.executable, "-m", "conda_lock", "render", "-k", "explicit", "-p", platform,
         "--filename-template", "out-{platform}.lock", str(lockfile)],
        cwd=folder, check=True, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    text = (folder / f"out-{platform}.lock").read_text(encoding="utf-8")
    return [ln for ln in text.splitlines() if ln and not ln.startswith(("#", "@"))]
