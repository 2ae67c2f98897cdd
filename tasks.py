"""i2vkit's front door: each task parses its flags, calls one library function, and turns the
project's own errors into `invoke.Exit` with the message. No logic lives here.

Only the light layer may be imported at module level: `invoke --list` must work before torch is
installed.
"""

from __future__ import annotations

import os
import shlex
import sys

from invoke import Collection, Context, Exit, task

from i2vkit.errors import I2VKitError
from i2vkit.settings import Settings, resolve

TEST_PATHS = ["tests"]
LINT_PATHS = ["tasks.py", "i2vkit", "mirrors", "env", "images", "runtime", "tests"]


def _settings(c: Context, **flags: object) -> Settings:
    return resolve(flags, dict(c.config.get("i2vkit", {})), os.environ)


@task(
    help={
        "json": "print the report as JSON (schema: runtime/data/doctor.schema.json)",
        "model": "model whose disk needs are checked (default: settings' model)",
    }
)
def doctor(c: Context, json: bool = False, model: str | None = None) -> None:
    """Describe this host and say which torch build, tier and presets fit it."""
    from rich.console import Console

    from runtime import doctor as doc

    try:
        data = doc.report(_settings(c), model)
    except I2VKitError as error:
        raise Exit(f"doctor: {error}", code=2) from error
    if json:
        print(doc.to_json(data))
    else:
        doc.render(data, Console(soft_wrap=False))
    if not data["ok"]:
        raise Exit(code=1)


@task(help={"k": "only tests matching this expression", "x": "stop at the first failure"})
def test(c: Context, k: str = "", x: bool = False) -> None:
    """Run the test suite (the default tier: no GPU needed)."""
    args = [sys.executable, "-m", "pytest", *TEST_PATHS]
    if k:
        args += ["-k", k]
    if x:
        args.append("-x")
    c.run(shlex.join(args), pty=False)


@task
def check(c: Context) -> None:
    """Lint, format check and type check; changes nothing."""
    py = sys.executable
    c.run(f"{py} -m ruff check {' '.join(LINT_PATHS)}")
    c.run(f"{py} -m ruff format --check {' '.join(LINT_PATHS)}")
    c.run(f"{py} -m mypy")


@task
def fix(c: Context) -> None:
    """Apply ruff's fixes and formatting."""
    py = sys.executable
    c.run(f"{py} -m ruff check --fix {' '.join(LINT_PATHS)}")
    c.run(f"{py} -m ruff format {' '.join(LINT_PATHS)}")


ns = Collection(doctor, test, check, fix)
