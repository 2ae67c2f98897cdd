"""`i2vkit lock`: regenerate the lockfiles where their indexes are reachable.

The pip layer: `uv pip compile` of i2vkit's own dependencies plus the runtime extra, for every
platform and Python >= 3.10 at once (--universal), with hashes, torch left out (overrides.txt:
it comes per CUDA variant from its own index). The conda layer: env/condalock.py's py-rattler
solve of env/environment.yml. Both keep canonical URLs; a mirror only changes where the solve
reads from.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from i2vkit import files
from i2vkit.data import need_checkout
from i2vkit.env import condalock
from i2vkit.env.plan import REQUIREMENTS
from i2vkit.errors import SolveError
from i2vkit.mirrors import rewrite
from i2vkit.mirrors.catalogue import Catalogue, load
from i2vkit.mirrors.choose import MirrorPlan, resolve
from i2vkit.tools import uv


def lock_pip(plan: MirrorPlan, out: Path = REQUIREMENTS / "runtime.txt") -> list[Path]:
    """runtime.txt, and cluster.txt beside it: the same pins plus Ray's (the `cluster` extra,
    for `serve --cluster` and the nodes that join one), constrained by runtime.txt so that the
    two never disagree on a shared package."""
    root = need_checkout("i2vkit lock (it compiles the checkout's pyproject.toml)")
    with files.replacing(out) as tmp:
        _compile(root, plan, tmp, ["--extra", "runtime"])
    cluster = out.with_name("cluster.txt")
    with files.replacing(cluster) as tmp:
        _compile(root, plan, tmp, ["--extra", "runtime", "--extra", "cluster", "-c", str(out)])
    return [out, cluster]


def _compile(root: Path, plan: MirrorPlan, tmp: Path, extra: list[str]) -> None:
    done = subprocess.run(
        [uv(), "pip", "compile", str(root / "pyproject.toml"), *extra,
         "--universal", "--python-version", "3.10", "--generate-hashes", "--no-header",
         "--annotation-style", "line", "--override", str(REQUIREMENTS / "overrides.txt"),
         "--index-url", plan.url("pypi"), "--no-config", "-o", str(tmp)],
        capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode != 0:
        raise SolveError(f"locking the pip layer through {plan.url('pypi')} failed: "
                          f"{done.stderr.strip().splitlines()[-1:]}")  # fmt: skip


def lock_conda(catalogue: Catalogue, plan: MirrorPlan, platforms: list[str] | None) -> Path:
    rules = rewrite.rules(catalogue, plan) if plan.requested != "default" else []
    return condalock.lock(platforms=platforms or None, rules=rules, catalogue=catalogue)


def lock(mirror: str, custom_mirrors: Mapping[str, Any] | None, pip: bool, conda: bool,
         platforms: list[str] | None) -> list[Path]:  # fmt: skip
    """Re-solve the pip layer, the conda layer, or both through `mirror`; the files written."""
    need_checkout("i2vkit lock (it rewrites env/requirements and env/conda-lock.yml)")
    catalogue = load(custom=custom_mirrors)
    plan = resolve(catalogue, mirror)
    written = []
    if pip:
        written.extend(lock_pip(plan))
    if conda:
        written.append(lock_conda(catalogue, plan, platforms))
    return written
