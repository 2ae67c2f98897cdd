"""`i2vkit setup`: plan, print, then act. Builds the env into a fresh folder and swaps it in
only when it works, so a failure or Ctrl-C leaves the previous env as it was; records what it
installed so a re-run with nothing changed returns at once without the network; fetches the
model's weights; ends with the time and network bytes of every step.

The default env lives at $I2VKIT_HOME/envs/default, a symlink to the current build (replaced
atomically). `--prefix PATH` builds exactly there instead (images use it).
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import psutil

from i2vkit.env import plan as planning
from i2vkit.env import state as env_state
from i2vkit.env import venv
from i2vkit.env.weights import WeightsResult, fetch
from i2vkit.errors import ToolMissingError
from i2vkit.mirrors import render
from i2vkit.mirrors.install import InstallResult
from i2vkit.settings import Settings


@dataclass
class Step:
    name: str
    seconds: float
    source: str = ""  # mirror(s) the step's files came from
    received: int = 0  # network bytes during the step (psutil, all interfaces)
    detail: str = ""


@dataclass
class Report:
    plan: planning.SetupPlan
    up_to_date: bool = False
    steps: list[Step] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    env_python: Path | None = None
    weights: WeightsResult | None = None


class _Timer:
    def __init__(self, report: Report, name: str) -> None:
        self.report, self.name = report, name

    def __enter__(self) -> Step:
        self.step = Step(self.name, 0.0)
        self.start, self.bytes = time.perf_counter(), psutil.net_io_counters().bytes_recv
        return self.step

    def __exit__(self, *exc: object) -> None:
        self.step.seconds = time.perf_counter() - self.start
        self.step.received = psutil.net_io_counters().bytes_recv - self.bytes
        self.report.steps.append(self.step)


def current(plan: planning.SetupPlan) -> env_state.EnvState | None:
    """The installed env's record if it matches the plan (then nothing needs doing)."""
    found = env_state.read(plan.prefix)
    if found and found.matches(plan.lock_hash, plan.variant, plan.backend, plan.python_version):
        return found
    return None


def _sources(result: InstallResult) -> str:
    ok = [a.mirror for a in result.attempts if a.ok]
    failed = [a.mirror for a in result.attempts if not a.ok]
    return ", ".join(ok) + (f" (after {', '.join(failed)} failed)" if failed else "")


def _interpreter(plan: planning.SetupPlan, folder: Path, report: Report) -> Path:
    """The env's Python at `folder`: a uv venv, or the conda layer from the lockfile."""
    if plan.backend == "venv":
        with _Timer(report, "create venv") as step:
            step.detail = plan.python
            return venv.create(folder, plan.python)
    from i2vkit.env import conda, conda_exe

    with _Timer(report, "conda layer") as step:
        if plan.backend == "mamba":
            found = conda_exe.detect()
            if found.exe is None:
                fix = "install mamba (or micromamba), or use --backend rattler or venv"
                raise ToolMissingError("mamba", found.reason, fix)
            result = conda_exe.install_exe(planning.CONDA_LOCK, folder, plan.mirrors_catalogue,
                                           plan.mirrors, found.exe)  # fmt: skip
        else:
            result = conda.install_rattler(planning.CONDA_LOCK, folder, plan.mirrors_catalogue,
                                           plan.mirrors)  # fmt: skip
        step.source = ", ".join(result.bytes_by_mirror()) or "cache"
        step.detail = f"{len(result.packages)} conda package(s) ({result.backend})"
        report.notes += [line for line in result.summary() if "fail" in line or "switch" in line]
    return venv.python_of(folder)


def _build(plan: planning.SetupPlan, folder: Path, report: Report) -> env_state.EnvState:
    python = _interpreter(plan, folder, report)
    used: dict[str, str] = {}
    for name, kind, run in (("torch", "torch", venv.install_torch),
                            ("pip layer", "pypi", venv.install_runtime)):  # fmt: skip
        with _Timer(report, name) as step:
            result = run(python, plan, plan.mirrors_catalogue)
            step.source = _sources(result)
            step.detail = f"{len(result.files)} file(s) downloaded"
            report.notes += [line for line in result.summary() if "failed" in line]
        used[kind] = result.attempts[-1].mirror
    with _Timer(report, "check") as step:
        venv.link_project(python)
        step.detail = f"torch {venv.check(python)}"
        # the mirror's pip.conf / uv.toml / .condarc inside the env, so a later `pip install`
        # there uses the same mirror: the user's own configuration is not touched
        written = render.write(render.config_files(plan.mirrors, folder, "env"))
        report.notes.append(f"mirror config written: {', '.join(p.name for p in written)}")
    return env_state.EnvState(plan.lock_hash, plan.variant, plan.backend, str(python),
                              plan.torch, used, env_state.now(), plan.python_version)  # fmt: skip


def _swap_in(built: Path, target: Path, default_layout: bool) -> None:
    """Make `built` the env at `target`. The default layout swaps a symlink atomically
    (os.replace); an explicit prefix is renamed into place (its old contents set aside first)."""
    if default_layout:
        link = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.link")
        link.symlink_to(built.name)
        old = target.resolve() if target.is_symlink() else None
        link.replace(target)
        if old is not None and old != built.resolve():
            shutil.rmtree(old, ignore_errors=True)
        return
    aside = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
    if target.exists():
        target.rename(aside)
    built.rename(target)
    shutil.rmtree(aside, ignore_errors=True)


def _clean_stale(target: Path) -> None:
    """Folders a killed run left: never the live one, never a finished one."""
    live = target.resolve() if target.is_symlink() else None
    for stale in target.parent.glob(f".{target.name}-*.building"):
        shutil.rmtree(stale, ignore_errors=True)
    for old in target.parent.glob(f"{target.name}-*"):
        if old.is_dir() and old != live and not (old / env_state.STATE).exists():
            shutil.rmtree(old, ignore_errors=True)


def build_env(plan: planning.SetupPlan, report: Report, default_layout: bool) -> Path:
    """Build into a folder nobody uses yet, then swap it in; any failure (Ctrl-C included)
    removes the new folder and leaves the previous env untouched.

    The default layout builds in the final folder (`default-<lock>-<id>`) and swaps the
    `default` symlink atomically: no env is ever moved, which conda prefixes do not survive.
    An explicit --prefix builds a relocatable venv beside it and renames it into place; a conda
    prefix is built in place with the old one set aside, and put back on failure."""
    target = plan.prefix
    target.parent.mkdir(parents=True, exist_ok=True)
    _clean_stale(target)
    tag = f"{plan.lock_hash[:16]}-{uuid.uuid4().hex[:6]}"
    if default_layout:
        folder = target.with_name(f"{target.name}-{tag}")
    elif plan.backend == "venv":
        folder = target.with_name(f".{target.name}-{tag}.building")
    else:
        folder = target
    aside = target.with_name(f".{target.name}.old-{tag}")
    if folder == target and target.exists():
        target.rename(aside)
    try:
        record = replace(_build(plan, folder, report), python=str(venv.python_of(target)))
        env_state.write(folder, record)
        if folder != target:
            _swap_in(folder, target, default_layout)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        if aside.exists():
            aside.rename(target)
        raise
    shutil.rmtree(aside, ignore_errors=True)
    return venv.python_of(target)


def run(options: planning.Options, app: Settings, show: Callable[[dict[str, Any]], None],
        dry_run: bool = False) -> Report:  # fmt: skip
    """Plan (printed through `show`), then act unless `dry_run`; see the module docstring."""
    started = time.perf_counter()
    # With --mirror auto, look first whether anything needs doing: no probe for a no-op.
    quick = replace(options, mirror="default") if options.mirror == "auto" else options
    plan = planning.make(quick, app)
    report = Report(plan)
    installed = current(plan) if plan.env else None
    weights_ready = (not plan.weights) or _weights_cached(plan, app)
    if not dry_run and (not plan.env or installed) and weights_ready:
        report.up_to_date = True
        report.env_python = Path(installed.python) if installed else None
        report.steps.append(Step("check", time.perf_counter() - started, detail="up to date"))
        return report
    if options.mirror == "auto":
        with _Timer(report, "probe mirrors") as step:
            plan = planning.make(options, app)
            step.detail = ", ".join(f"{k}: {v}" for k, v in plan.urls.items())
        report.plan = plan
    show(planning.describe(plan))
    if dry_run:
        return report
    default_layout = options.prefix is None
    if plan.env and not installed:
        report.env_python = build_env(plan, report, default_layout)
    elif installed:
        report.env_python = Path(installed.python)
    if plan.global_config:  # asked for: the user's own pip, uv and conda configuration
        changes = [
            c for c in render.config_files(plan.mirrors, None, "global") if c.what != "docker"
        ]
        report.notes += [f"wrote {p}" for p in render.write(changes)]
    if plan.weights and plan.model:
        with _Timer(report, "weights") as step:
            report.weights = fetch(plan.model, app, plan.mirrors_catalogue, plan.mirrors,
                                   report.env_python)  # fmt: skip
            step.source = report.weights.source
            step.detail = f"{report.weights.files} file(s), {report.weights.bytes_on_disk:,} B"
            report.notes += list(report.weights.notes)
    return report


def _weights_cached(plan: planning.SetupPlan, app: Settings) -> bool:
    from i2vkit.env.weights import cached

    if plan.model is None:
        return True
    if plan.model.local and (app.home / "models" / plan.model.name / "model_index.json").exists():
        return True
    return cached(plan.model, app) is not None
