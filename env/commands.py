"""What `invoke setup` prints: the plan before acting, the timing summary after."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from i2vkit.env import plan as planning
from i2vkit.env.setup import Report, run
from i2vkit.settings import Settings

MB = 1_000_000


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


def setup(options: planning.Options, app: Settings, dry_run: bool, as_json: bool,
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


def wheelhouse(path: str | None) -> Path | None:
    return Path(path).expanduser() if path else None
