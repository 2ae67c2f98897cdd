"""The venv backend: a relocatable uv venv from this Python, torch for the chosen variant from
its own wheel index, then the hash-locked pip layer, then i2vkit itself (linked, not copied).

uv rather than pip: it installs the same requirement set several times faster (measured in
docs/benchmarks.md). Every step goes through mirrors.install, which uses one index at a time
and fails over to the next mirror when the mirror is to blame (the network, a file that fails
the lockfile's hash, a portal page in place of the index); a local wheelhouse (the host pip's
own find-links folder, or --wheelhouse) is the last source tried.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

import i2vkit
from i2vkit import tools
from i2vkit.env.plan import SetupPlan
from i2vkit.errors import EnvCheckError
from i2vkit.mirrors.catalogue import Catalogue
from i2vkit.mirrors.install import (
    Attempt,
    InstallError,
    InstallResult,
    attempt,
    install,
    working_pypi,
)


def python_of(prefix: Path) -> Path:
    return prefix / "bin" / "python"


def create(prefix: Path, python: str) -> Path:
    """An empty venv at `prefix` whose scripts use relative paths (it may be renamed)."""
    subprocess.run(
        [tools.uv(), "venv", "--relocatable", "--quiet", "--python", python, str(prefix)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return python_of(prefix)


def _with_wheelhouse(
    python: Path, requirements: Sequence[str], plan: SetupPlan, catalogue: Catalogue, kind: str
) -> InstallResult:
    """Install through the mirror chain; if every mirror failed for network reasons and there
    is a wheelhouse, try it last (with the plan's PyPI mirror for what it lacks)."""
    try:
        return install(python, requirements, catalogue, plan.mirrors, kind=kind, tool="uv")
    except InstallError as error:
        failed = error.result
        if plan.wheelhouse is None or not all(a.mirror_fault for a in failed.attempts):
            raise
    pypi = working_pypi(catalogue, plan.mirrors)  # not a PyPI mirror that just failed
    sources = ["--find-links", str(plan.wheelhouse), "--index-url", pypi]
    last: Attempt = attempt(python, requirements, sources, "wheelhouse", tool="uv")
    if not last.ok and last.mirror_fault:  # no PyPI mirror either: the wheelhouse alone
        alone = ["--no-index", "--find-links", str(plan.wheelhouse)]
        last = attempt(python, requirements, alone, "wheelhouse", tool="uv")
    result = InstallResult(kind, "uv", (*failed.attempts, last), {}, failed.left_out)
    if not last.ok:
        raise InstallError(result)
    files = {n: "wheelhouse" for n in last.fetched}
    return InstallResult(kind, "uv", result.attempts, files, failed.left_out)


def install_torch(python: Path, plan: SetupPlan, catalogue: Catalogue) -> InstallResult:
    # The local version label (+cpu, +cu126) means only the variant's index can satisfy it:
    # PyPI's torch of the same version is another build.
    return _with_wheelhouse(python, [plan.torch], plan, catalogue, "torch")


def install_runtime(python: Path, plan: SetupPlan, catalogue: Catalogue) -> InstallResult:
    # The lock is the whole closure except torch (installed first, with its own dependencies):
    # --no-deps installs exactly it, every file checked against its hash, instead of asking
    # for a hash of the torch that accelerate depends on.
    args = ["--no-deps", "--require-hashes", "-r", str(plan.lock)]
    return _with_wheelhouse(python, args, plan, catalogue, "pypi")


def link_project(python: Path) -> Path:
    """Make the env import the i2vkit that runs this setup: a symlink named `i2vkit` in the env's
    site-packages to this package's folder (a checkout's, or a wheel's install), so the env runs
    the same code without building or copying it, and nothing else of this interpreter leaks
    in (a .pth line to the checkout would expose its other folders too)."""
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    link = Path(site) / "i2vkit"
    link.unlink(missing_ok=True)
    link.symlink_to(Path(i2vkit.__file__).resolve().parent, target_is_directory=True)
    return link


def check(python: Path) -> str:
    """Every requirement satisfied (`uv pip check`), and the runtime layer imports; returns
    torch's version."""
    deps = subprocess.run(
        [tools.uv(), "pip", "check", "--python", str(python)], capture_output=True, text=True
    )
    if deps.returncode != 0:
        raise EnvCheckError(f"the new env's requirements conflict: {deps.stdout[-600:]}")
    # The third-party runtime layer and the project link, not i2vkit's own runtime modules: an
    # image's env stage has only the setup code (a code change must not rebuild the env).
    code = (
        "import importlib.metadata as m, importlib.util as u, torch, i2vkit\n"
        "if u.find_spec('diffusers'):\n"  # a lock without the runtime layer (tests' small sets)
        "    import diffusers, transformers, safetensors, av\n"
        "print(m.version('torch'))"
    )
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True)
    if done.returncode != 0:
        raise EnvCheckError(f"the new env does not import the runtime layer: {done.stderr[-600:]}")
    return done.stdout.strip()
