"""What every task shares: invoke's @task with i2vkit's errors turned into an exit, and the
settings object resolved from flags, invoke.yaml and the environment."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

import invoke
from invoke import Context, Exit

from i2vkit.errors import I2VKitError, exit_code
from i2vkit.settings import Settings, resolve


def command(**kwargs: Any) -> Callable[[Callable[..., Any]], invoke.Task]:
    """invoke's @task(...); an I2VKitError from the body becomes `invoke.Exit` with the task's
    name, the message, and the exit code i2vkit.errors gives it (2: fix the command, 1: it
    failed). The body's signature is kept (functools.wraps): invoke derives the flags from it."""

    def decorate(body: Callable[..., Any]) -> invoke.Task:
        name = kwargs.get("name") or body.__name__.replace("_", "-")

        @functools.wraps(body)
        def run(c: Context, *a: Any, **kw: Any) -> Any:
            try:
                return body(c, *a, **kw)
            except I2VKitError as error:
                raise Exit(f"{name}: {error}", code=exit_code(error)) from error

        task: invoke.Task = invoke.task(**kwargs)(run)
        return task

    return decorate


def settings(c: Context, **flags: object) -> Settings:
    """Flag > invoke.yaml (`i2vkit:` section) > environment variable > default."""
    return resolve(flags, dict(c.config.get("i2vkit", {})), os.environ)


def runtime_settings(c: Context, **flags: object) -> Settings:
    """Settings for a task that needs the runtime layer (torch): re-runs the same command line
    inside the env `i2vkit setup` built when this interpreter lacks it (never returns then)."""
    from i2vkit.env.runner import ensure_runtime

    app = settings(c, **flags)
    ensure_runtime(app)
    return app


def mirrors_config(c: Context) -> dict[str, Any]:
    """invoke.yaml's custom mirrors (`mirrors:`), which come before the catalogue's."""
    return dict(c.config.get("mirrors", {}))
