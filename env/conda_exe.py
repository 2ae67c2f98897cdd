"""The conda layer through a conda executable on PATH (mamba > micromamba > conda), for hosts
that already have one; otherwise env/conda.py's embedded rattler backend needs none.

The lockfile is rendered to an @EXPLICIT file whose URLs point at the chosen mirror, md5
attached, and handed to `<exe> create --yes --prefix PREFIX --file FILE` (the same call
conda-lock makes for all three): an explicit file is installed as written, with no solve and no
channel configuration, so neither the user's .condarc nor a channel can change what is
installed. A network failure fails over to the next mirror, as in env/conda.py.

None of these executables is available on the test bed: `detect` is tested, `install_exe` is not.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from i2vkit.env import condalock
from i2vkit.env.conda import (
    CondaInstallError,
    CondaResult,
    conda_chain,
    host_platform,
    mirror_rules,
    read_prefix,
)
from i2vkit.mirrors import failover
from i2vkit.mirrors.catalogue import Catalogue
from i2vkit.mirrors.choose import MirrorPlan
from i2vkit.mirrors.failover import Attempt, Notify

EXECUTABLES = ("mamba", "micromamba", "conda")
# Where an initialised shell keeps the executable when the command itself is a shell function
# (micromamba's and conda's shell hooks), so it need not be on PATH as a file.
_EXE_VARIABLES = ("MAMBA_EXE", "CONDA_EXE")
_WHY = {
    "mamba": "mamba is the fastest of the three (libmamba, parallel downloads)",
    "micromamba": "micromamba is a single static binary with libmamba's speed",
    "conda": "conda installs explicit files too, more slowly than mamba",
}


@dataclass(frozen=True)
class Detection:
    name: str | None  # 'mamba', 'micromamba', 'conda', or None when none was found
    exe: Path | None
    reason: str


def detect(path: str | None = None, environ: Mapping[str, str] | None = None) -> Detection:
    """Which conda executable `--backend auto` would use, and why. `path` is a PATH string
    (default: $PATH); `environ` supplies MAMBA_EXE / CONDA_EXE (default: os.environ)."""
    environ = os.environ if environ is None else environ
    search = environ.get("PATH", os.defpath) if path is None else path
    for name in EXECUTABLES:
        found = shutil.which(name, path=search)
        if found:
            return Detection(name, Path(found), f"{name} is on PATH at {found}: {_WHY[name]}")
    shells: dict[str, tuple[str, str]] = {}
    for variable in _EXE_VARIABLES:
        value = environ.get(variable, "")
        if Path(value).name in EXECUTABLES and os.access(value, os.X_OK):
            shells.setdefault(Path(value).name, (value, variable))
    for name in (n for n in EXECUTABLES if n in shells):
        value, variable = shells[name]
        return Detection(name, Path(value), f"{name} at {value} (${variable}): {_WHY[name]}")
    tried = ", ".join(EXECUTABLES)
    return Detection(
        None, None, f"none of {tried} is on PATH: the embedded py-rattler backend needs none"
    )


def _run(exe: Path, prefix: Path, text: str, timeout: float) -> tuple[int, str]:
    with tempfile.TemporaryDirectory(prefix="i2vkit-explicit-") as tmp:
        explicit = Path(tmp) / "explicit.txt"
        explicit.write_text(text, encoding="utf-8")
        command = [str(exe), "create", "--yes", "--prefix", str(prefix), "--file", str(explicit)]
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            return -1, f"{exe.name} timed out after {timeout:.0f} s"
        return done.returncode, done.stdout + done.stderr


def install_exe(
    lockfile: Path,
    prefix: Path,
    catalogue: Catalogue,
    plan: MirrorPlan,
    exe: Path,
    *,
    platform: str | None = None,
    notify: Notify | None = None,
    timeout_s: float = 3600,
) -> CondaResult:
    """Install the lockfile's packages for `platform` into `prefix` with the conda executable
    `exe` (from `detect()`), failing over along the plan's conda chain like install_rattler."""
    platform = platform or host_platform()
    condalock.records(lockfile, platform)  # a missing file or platform fails here, named

    def attempt(mirror: str) -> Attempt:
        text = condalock.explicit(lockfile, platform, mirror_rules(catalogue, mirror))
        start = time.monotonic()
        code, output = _run(exe, prefix, text, timeout_s)
        took = time.monotonic() - start
        if code == 0:
            return Attempt(mirror, True, took)
        reason = f"{exe.name} failed with mirror {mirror}: {failover.failing_line(output)}"
        return Attempt(mirror, False, took, reason, failover.mirror_fault(output))

    attempts = failover.run(conda_chain(plan), attempt, "conda", notify)
    backend = exe.name
    if not attempts[-1].ok:
        raise CondaInstallError(CondaResult(backend, platform, prefix, attempts, ()))
    return CondaResult(backend, platform, prefix, attempts, read_prefix(prefix, catalogue))
