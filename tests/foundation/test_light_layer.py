"""Rooms by weight: only i2vkit.runtime imports torch or FastAPI. Every other module (and
tasks.py) imports in an interpreter where those cannot be imported at all, so `invoke doctor`
and `invoke setup` run on a machine where the runtime layer is not installed yet."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import i2vkit
from tests.helpers.invoke import ROOT

HEAVY = ("torch", "diffusers", "transformers", "accelerate", "fastapi", "uvicorn", "av")


def light_modules() -> list[str]:
    found = [m.name for m in pkgutil.walk_packages(i2vkit.__path__, "i2vkit.")]
    return sorted(m for m in found if not m.startswith("i2vkit.runtime"))


def test_every_module_outside_the_runtime_imports_without_torch_or_fastapi():
    modules = light_modules()
    assert {"i2vkit.cli", "i2vkit.planner", "i2vkit.env.setup", "i2vkit.images.build"} <= set(
        modules
    )
    code = (
        "import importlib, sys\n"
        f"for name in {HEAVY!r}: sys.modules[name] = None  # `import torch` now fails\n"
        f"for module in {modules!r}: importlib.import_module(module)\n"
        "import tasks\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]


def test_the_runtime_is_where_torch_is():
    """The rule is about weight: the runtime's modules really do need the heavy layer."""
    code = "import sys; sys.modules['torch'] = None\nimport i2vkit.runtime.pipelines\n"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode != 0 and "torch" in done.stderr
