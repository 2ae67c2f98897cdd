"""Finding the programs i2vkit (and its tests) run: through the running interpreter, never PATH.

A tool that comes from PyPI (uv, pypi-server, olah, schemathesis, hadolint) is a declared
dependency, installed into the same environment as i2vkit: its console script sits in this
interpreter's scripts folder whatever PATH says, and a venv that was never activated still
finds it. Looking on PATH instead finds whatever someone installed by hand, or nothing at all
(`.venv/bin/invoke setup` with the venv not activated). uv has its own locator, which also knows
its user-scheme installs. System programs (gcc, dockerd, debootstrap, chromium, mamba) come
from the OS or its package manager and are looked up on PATH, with the package to install.
"""

from __future__ import annotations

import shutil
import sys
import sysconfig
from pathlib import Path

from i2vkit.errors import ToolMissingError


def _pip_fix(package: str) -> str:
    return f"{sys.executable} -m pip install {package}"


def script(name: str, package: str) -> Path:
    """The console script `name` that the PyPI distribution `package` installs into this
    interpreter's environment; ToolMissingError (with the pip command that fixes it) if absent."""
    folders = [Path(sysconfig.get_path("scripts"))]
    # a `pip install --user` lands in the user scheme's folder
    folders.append(Path(sysconfig.get_path("scripts", _user_scheme())))
    for folder in folders:
        found = folder / name
        if found.is_file():
            return found
    raise ToolMissingError(name, f"it is not installed for {sys.executable}", _pip_fix(package))


def _user_scheme() -> str:
    return "nt_user" if sys.platform == "win32" else "posix_user"


def uv() -> Path:
    """uv's binary, through the `uv` package's own locator (i2vkit depends on uv)."""
    try:
        from uv import find_uv_bin
    except ImportError as error:
        why = f"the uv package is not installed for {sys.executable}"
        raise ToolMissingError("uv", why, _pip_fix("uv")) from error
    try:
        return Path(find_uv_bin())
    except FileNotFoundError as error:
        why = f"the uv package has no binary for {sys.executable}"
        raise ToolMissingError("uv", why, _pip_fix("--force-reinstall uv")) from error


def system(name: str, apt: str, path: str | None = None) -> Path:
    """A program the operating system provides, found on PATH (or `path`), or
    ToolMissingError naming the Debian/Ubuntu package that provides it."""
    found = shutil.which(name, path=path)
    if found is None:
        raise ToolMissingError(name, "it is not on PATH", f"apt-get install -y {apt}")
    return Path(found)
