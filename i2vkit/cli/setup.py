"""`setup` and `lock`: the locked environment and the model's weights; the lockfiles. Prints the
plan before acting and the timing summary after."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from invoke import Context

from i2vkit.cli.base import command, mirrors_config, settings
from i2vkit.env import plan as planning
from i2vkit.env.setup import Report, run
from i2vkit.settings import Settings

MB = 1_000_000


@command(
    help={
        "mirror": "tuna, aliyun, ustc, sjtu, default, a custom mirror, or auto (probe)",
        "model": "model whose weights to fetch (default: settings' model)",
        "backend": "auto (mamba if on PATH, else rattler with a conda lock, else venv), "
        "mamba, rattler or venv",
        "cuda": "torch wheel variant: auto (from `i2vkit doctor`), cpu, cu126, cu129, ...",
        "prefix": "build the env exactly here (default: $I2VKIT_HOME/envs/default)",
        "no-weights": "build the env only",
        "weights-only": "fetch the weights only",
        "wheelhouse": "a local folder of wheels tried after every mirror "
        "(default: the host pip's find-links folder, if any)",
        "dry-run": "print the plan and change nothing (no network unless --mirror auto)",
        "json": "print the plan and the result as JSON",
        "lock": "the pip layer's lockfile (default: env/requirements/runtime.txt)",
        "global-config": "also point your own pip, uv and conda configuration at the mirror "
        "(by default only the env's own config files are written)",
    }
)
def setup(
    c: Context,
    mirror: str | None = None,
    model: str | None = None,
    backend: str = "auto",
    cuda: str = "auto",
    prefix: str | None = None,
    no_weights: bool = False,
    weights_only: bool = False,
    wheelhouse: str | None = None,
    dry_run: bool = False,
    json: bool = False,
    lock: str | None = None,
    global_config: bool = False,
) -> None:
    """Build the locked environment (torch for this host's CUDA) and fetch the model."""
    from rich.console import Console

    app = settings(c, model=model, mirror=mirror)
    options = planning.Options(
        mirror=app.mirror, model=app.model, backend=backend, cuda=cuda,
        prefix=Path(prefix).absolute() if prefix else None, env=not weights_only,
        weights=not no_weights, wheelhouse=Path(wheelhouse).expanduser() if wheelhouse else None,
        custom_mirrors=mirrors_config(c), lock=Path(lock).absolute() if lock else None,
        global_config=global_config,
    )  # fmt: skip
    run_setup(options, app, dry_run, json, Console())


@command(
    help={
        "mirror": "solve through this mirror (the lockfiles keep canonical URLs)",
        "platform": "conda platforms to lock (repeatable; default: the spec's)",
        "pip-only": "lock only the pip layer (env/requirements/runtime.txt)",
        "conda-only": "lock only the conda layer (env/conda-lock.yml)",
    },
    iterable=["platform"],
)
def lock(
    c: Context,
    mirror: str | None = None,
    platform: list[str] | None = None,
    pip_only: bool = False,
    conda_only: bool = False,
) -> None:
    """Regenerate the lockfiles (pip layer with uv, conda layer with py-rattler)."""
    from i2vkit.env import lock as locking

    app = settings(c, mirror=mirror)
    for path in locking.lock(app.mirror, mirrors_config(c), not conda_only, not pip_only,
                             platform):  # fmt: skip
        print(f"wrote {path}")


def draw_plan(data: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row("backend", f"{data['backend']['value']}: {data['backend']['reason']}")
    variant = data["variant"]
    grid.add_row("torch", f"{variant['torch']}: {variant['reason']}")
    grid.add_row("python", data["python"])
    grid.add_row("env", f"{data['prefix']} (lock {data['lock']['hash'][:16]}: "
                 f"{', '.join(data['lock']['files'])})")  # fmt: skip
    for kind, url in data["urls"].items():
        chain = " > ".join(data["failover"].get(kind, []))
        grid.add_row(kind, f"{url}; failover: {chain}")
    if data["wheelhouse"]:
        grid.add_row("wheelhouse", f"{data['wheelhouse']} (tried after every mirror)")
    for note in data["notes"]:
        grid.add_row("note", note)
    console.print(grid)
    if data["model"]:
        files = Table("file", "bytes", title=f"{data['model']}: {data['repo']}")
        for f in data["files"]:
            files.add_row(f["path"], f"{f['bytes']:,}")
        files.add_row("total", f"{data['download_bytes']:,}")
        console.print(files)
        chain = " > ".join(f"{s['name']} ({s['url']})" for s in data["sources"])
        console.print(f"weights from: {chain}")
        for terms in data["license"]:
            console.print(f"licence: {terms}")
        if data["memory"]:
            names = [p["preset"] for p in data["memory"][0]["presets"]]
            memory = Table("GPU", *names, title=f"{data['model']}: memory strategy per preset "
                           "(bf16, the planner's estimate)")  # fmt: skip
            for row in data["memory"]:
                memory.add_row(f"{row['gib']} GiB", *(
                    f"{p['strategy']} ({p['peak_gib']} GiB)" if p["fits"] else "does not fit"
                    for p in row["presets"]
                ))  # fmt: skip
            console.print(memory)


def draw_report(report: Report, console: Any) -> None:
    from rich.table import Table

    if report.up_to_date:
        console.print(
            f"[green]up to date[/] ({report.steps[-1].seconds:.2f} s): env {report.plan.prefix}, "
            f"lock {report.plan.lock_hash[:16]}, {report.plan.torch}"
            + (f", model {report.plan.model.name}" if report.plan.model else "")
        )
        return
    table = Table("step", "seconds", "from", "MB received", "detail", title="setup")
    for s in report.steps:
        table.add_row(s.name, f"{s.seconds:.1f}", s.source, f"{s.received / MB:.1f}", s.detail)
    table.add_row("total", f"{sum(s.seconds for s in report.steps):.1f}", "",
                  f"{sum(s.received for s in report.steps) / MB:.1f}", "")  # fmt: skip
    console.print(table)
    for note in report.notes:
        console.print(f"note: {note}")
    if report.env_python:
        console.print(f"env ready: {report.env_python}")


def run_setup(options: planning.Options, app: Settings, dry_run: bool, as_json: bool,
              console: Any) -> Report:  # fmt: skip
    shown: dict[str, Any] = {}

    def show(data: dict[str, Any]) -> None:
        shown.update(data)
        if not as_json:
            draw_plan(data, console)

    report = run(options, app, show, dry_run)
    if as_json:
        steps = [vars(s) for s in report.steps]
        print(json.dumps({"plan": shown or planning.describe(report.plan), "dry_run": dry_run,
                          "up_to_date": report.up_to_date, "steps": steps,
                          "notes": report.notes}, indent=2, default=str))  # fmt: skip
    elif not dry_run:
        draw_report(report, console)
    return report
