"""`test`, `check` and `fix`: the developer's tasks, in a checkout only (tasks.py adds them)."""

from __future__ import annotations

import shlex
import sys

from invoke import Context

from i2vkit.cli.base import command
from i2vkit.data import need_checkout

# ruff does not follow the symlinks in i2vkit/: the rooms are linted where they live
LINT_PATHS = ["tasks.py", "i2vkit", "mirrors", "env", "images", "runtime", "tests", "benchmarks"]


@command(help={"k": "only tests matching this expression", "x": "stop at the first failure"})
def test(c: Context, k: str = "", x: bool = False) -> None:
    """Run the test suite (the default tier: no GPU needed)."""
    root = need_checkout("invoke test")
    args = [sys.executable, "-m", "pytest", str(root / "tests")]
    if k:
        args += ["-k", k]
    if x:
        args.append("-x")
    with c.cd(str(root)):
        c.run(shlex.join(args), pty=False)


@command()
def check(c: Context) -> None:
    """Lint, format check and type check; changes nothing."""
    root, py = need_checkout("invoke check"), sys.executable
    with c.cd(str(root)):
        c.run(f"{py} -m ruff check {' '.join(LINT_PATHS)}")
        c.run(f"{py} -m ruff format --check {' '.join(LINT_PATHS)}")
        c.run(f"{py} -m mypy")


@command()
def fix(c: Context) -> None:
    """Apply ruff's fixes and formatting."""
    root, py = need_checkout("invoke fix"), sys.executable
    with c.cd(str(root)):
        c.run(f"{py} -m ruff check --fix {' '.join(LINT_PATHS)}")
        c.run(f"{py} -m ruff format {' '.join(LINT_PATHS)}")
