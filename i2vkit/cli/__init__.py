"""The command line: `i2vkit <task>` from any folder (the console script), and `invoke <task>` in
a checkout (tasks.py assembles the same tasks, plus the developer's test, check and fix).

Each task parses its flags, calls one library function, and draws its result for people; errors
become exits through one decorator (i2vkit/cli/base.py). Importing this package is light: the
runtime's tasks import torch only inside their bodies.
"""

from __future__ import annotations

from pathlib import Path

from invoke import Collection, Program

from i2vkit import __version__
from i2vkit.cli import bench, doctor, images, mirrors, models, runtime, setup


def namespace() -> Collection:
    """Every task a deployment uses, in the order it meets them."""
    return Collection(
        doctor.doctor, models.models, mirrors.mirrors_task, setup.setup, setup.lock,
        runtime.generate, runtime.serve, bench.bench, runtime.calibrate, images.build_image,
        images.run_image,
    )  # fmt: skip


class _Program(Program):
    """invoke's Program with i2vkit's tasks built in. Like `invoke` beside tasks.py, it also
    reads invoke.yaml (.yml, .json, .py) from the working folder: the same settings file works
    with both commands."""

    def parse_collection(self) -> None:
        super().parse_collection()
        self.config.set_project_location(str(Path.cwd()))
        self.config.load_project()


def main() -> None:
    """The `i2vkit` console script (and `python -m i2vkit`)."""
    _Program(namespace=namespace(), name="i2vkit", binary="i2vkit", version=__version__).run()
