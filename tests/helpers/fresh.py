"""A machine where nobody installed anything by hand, as far as a process can see: a copy of the
checkout, a new HOME, PATH of the system folders plus the folder of the real python3, and from
this machine only its network settings (TLS trust, pip's variables and pip's user config file,
which is where this kind of machine gets torch). What the README promises must hold there."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]
SYSTEM_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
TLS_VARIABLES = ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


def base_python() -> Path:
    """The interpreter this test environment was made from (not a venv's link, not a shim)."""
    return Path(os.path.realpath(getattr(sys, "_base_executable", sys.executable)))


def _pip_config() -> Path | None:
    home = Path.home()
    for candidate in (home / ".config" / "pip" / "pip.conf", home / ".pip" / "pip.conf"):
        if candidate.is_file():
            return candidate
    return None


def environment(home: Path) -> dict[str, str]:
    """`env -i` plus what a fresh machine of this kind would have: see the module docstring."""
    home.mkdir(parents=True, exist_ok=True)
    env = {
        "HOME": str(home),
        "PATH": os.pathsep.join([str(base_python().parent), *SYSTEM_PATH]),
        "LANG": "C.UTF-8",
    }
    env |= {k: v for k, v in os.environ.items() if k in TLS_VARIABLES or k.startswith("PIP_")}
    config = _pip_config()
    if config is not None and "PIP_CONFIG_FILE" not in env:
        env["PIP_CONFIG_FILE"] = str(config)
    return env


def copy_checkout(dest: Path) -> Path:
    """The checkout's files as git sees them (committed, changed and new, not ignored): what a
    clone of it would hold, with the working tree's changes, and no .venv, caches or builds."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, listed):
        source = ROOT / name
        if not source.exists() and not source.is_symlink():
            continue  # deleted in the working tree
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target, follow_symlinks=False)
    return dest


def stop_session(leader: subprocess.Popen, marker: str) -> None:
    """Stop every process of the session `leader` started (start_new_session=True) whose
    command line holds `marker`: checked, since process ids are reused quickly here."""
    ours = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if os.getsid(proc.pid) == leader.pid and marker in " ".join(proc.info["cmdline"] or []):
                ours.append(proc)
        except (ProcessLookupError, psutil.Error):
            continue
    for proc in ours:
        proc.send_signal(signal.SIGTERM)
    _gone, alive = psutil.wait_procs(ours, timeout=20)
    for proc in alive:
        proc.kill()
    if leader.poll() is None:
        leader.wait(timeout=10)
