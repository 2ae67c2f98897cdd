"""`doctor`: this host, and which torch build, tier, presets and dtype fit it."""

from __future__ import annotations

from typing import Any

from invoke import Context, Exit

from i2vkit import doctor as doctor_report
from i2vkit.cli.base import command, settings


@command(
    help={
        "json": "print the report as JSON (schema: i2vkit/data/doctor.schema.json)",
        "model": "model whose disk needs are checked (default: settings' model)",
    }
)
def doctor(c: Context, json: bool = False, model: str | None = None) -> None:
    """Describe this host and say which torch build, tier and presets fit it."""
    from rich.console import Console

    data = doctor_report.report(settings(c), model)
    if json:
        print(doctor_report.to_json(data))
    else:
        render(data, Console(soft_wrap=False))
    if not data["ok"]:
        raise Exit(code=1)


def render(data: dict[str, Any], console: Any) -> None:
    """Print the report as tables on a rich Console."""
    from rich.table import Table

    gib = 1024**3
    host, nvidia, decisions = data["host"], data["nvidia"], data["decisions"]
    about = Table.grid(padding=(0, 2))
    about.add_column(style="bold")
    about.add_column()
    about.add_row("host", f"{host['os_release']}, {host['arch']}, Python {host['python']}")
    cpu = host["cpu"]
    about.add_row("cpu", f"{cpu['model']}, {cpu['logical']} logical / {cpu['physical']} physical")
    mem = host["memory"]
    about.add_row(
        "memory",
        f"{mem['total_bytes'] / gib:.1f} GiB total, {mem['available_bytes'] / gib:.1f} GiB free",
    )
    disk = host["disk"]
    about.add_row("disk", f"{disk['free_bytes'] / gib:.1f} GiB free at {disk['path']} (HF cache)")
    if nvidia["reason"] and not nvidia["gpus"]:
        about.add_row("nvidia", nvidia["reason"])
    else:
        about.add_row("nvidia", f"driver {nvidia['driver_version']}, CUDA {nvidia['cuda_version']}")
    console.print(about)
    if nvidia["gpus"]:
        gpus = Table("gpu", "name", "memory (free/total)", "compute", "bf16", "uuid")
        for g in nvidia["gpus"]:
            gpus.add_row(
                str(g["index"]),
                g["name"],
                f"{g['memory_free_bytes'] / gib:.1f} / {g['memory_total_bytes'] / gib:.1f} GiB",
                g["compute_capability"],
                "yes" if g["bf16"] else "no",
                g["uuid"],
            )
        console.print(gpus)
    table = Table("decision", "choice", "why", show_lines=True)
    variant = decisions["torch_variant"]
    table.add_row("torch wheel", variant["value"], variant["reason"])
    tier = decisions["tier"]
    lines = [tier["reason"], f"presets: {', '.join(tier['presets']) or 'none'}"]
    for g in nvidia["gpus"]:  # each GPU runs its own jobs: what each takes, and how
        mine = [f"{f['preset']} ({f['strategy']})" for f in tier["fits"]
                if f["gpu"] == g["index"] and f["fits"]]  # fmt: skip
        lines.append(f"GPU {g['index']}: {', '.join(mine) or 'none'}")
    table.add_row("tier", tier["value"], "\n".join(lines))
    table.add_row("dtype", decisions["dtype"]["value"], decisions["dtype"]["reason"])
    console.print(table)
    for line in data["warnings"]:
        console.print(f"[yellow]warning:[/] {line}")
    for line in data["problems"]:
        console.print(f"[red]problem:[/] {line}")
    if data["ok"]:
        console.print(f"[green]ok[/]: ready for model {data['model']['name']!r}")
