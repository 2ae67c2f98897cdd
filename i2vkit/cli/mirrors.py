"""`mirrors`: the mirror catalogue, a probe of it, or one mirror's exact configuration."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from invoke import Context

from i2vkit.cli.base import command, mirrors_config
from i2vkit.mirrors import report
from i2vkit.mirrors.catalogue import KINDS, Catalogue, load
from i2vkit.mirrors.choose import resolve
from i2vkit.mirrors.probe import probe


@command(
    name="mirrors",
    help={
        "probe": "measure every mirror now, in parallel (at most ~3 s); winner per kind",
        "show": "print the exact pip, uv, conda, HF, Docker and apt configuration for a mirror "
        "(a name, or 'auto' to probe first)",
        "json": "print the data as JSON (schema i2vkit.mirrors/1)",
        "variant": "torch wheel variant for torch URLs, e.g. cu126 (default: cu126)",
    },
)
def mirrors_task(
    c: Context,
    probe: bool = False,
    show: str | None = None,
    json: bool = False,
    variant: str | None = None,
) -> None:
    """List the mirror catalogue, probe it, or show one mirror's configuration."""
    run(load(custom=mirrors_config(c)), probe_now=probe, show=show, as_json=json,
        variant=variant)  # fmt: skip


def run(
    catalogue: Catalogue,
    *,
    probe_now: bool = False,
    show: str | None = None,
    as_json: bool = False,
    variant: str | None = None,
    prefix: str = "<env>",
    console: Any = None,
) -> dict[str, Any]:
    """Print one report (as JSON, or drawn for people) and return its data."""
    if show is not None:
        data, draw = report.show_report(resolve(catalogue, show, variant), prefix), draw_show
    elif probe_now:
        data, draw = report.probe_report(probe(catalogue, variant=variant)), draw_probe
    else:
        data, draw = report.listing(catalogue), draw_listing
    if as_json:
        print(json.dumps(data, indent=2))
    else:
        if console is None:
            from rich.console import Console

            console = Console(soft_wrap=False)
        draw(data, console)
    return data


def _speed(m: Mapping[str, Any]) -> str:
    if not m["ok"]:
        return m["reason"]
    text = f"first byte {m['first_byte_s'] * 1000:.0f} ms"
    if m["throughput_bps"]:
        text += f", {m['throughput_bps'] / 1e6:.1f} MB/s"
    return text


def draw_listing(data: Mapping[str, Any], console: Any) -> None:
    from rich.table import Table

    table = Table("mirror", "kind", title="mirror catalogue")
    table.add_column("url", overflow="fold")
    table.add_column("source", overflow="fold")
    for name, mirror in data["mirrors"].items():
        for kind, entry in mirror["offers"].items():
            url = entry["url"] + (f"  [{entry['layout']}]" if "layout" in entry else "")
            table.add_row(name, kind, url, entry["source"])
    console.print(table)
    gone = Table("mirror", "kind", "since", title="gone or restricted (never offered)")
    gone.add_column("why", overflow="fold")
    for g in data["gone"]:
        gone.add_row(g["mirror"], g["kind"], g["since"], g["why"])
    console.print(gone)


def draw_probe(data: Mapping[str, Any], console: Any) -> None:
    from rich.table import Table

    table = Table("kind", "mirror", title=f"probe (torch {data['variant']})")
    table.add_column("result", overflow="fold")
    table.add_column("")
    for kind in KINDS:
        for m in (m for m in data["measurements"] if m["kind"] == kind):
            best = "winner" if data["winners"].get(kind) == m["mirror"] else ""
            table.add_row(kind, m["mirror"], _speed(m), best)
    console.print(table)
    none = [k for k, w in data["winners"].items() if w is None]
    if none:
        console.print(f"no mirror answered for: {', '.join(none)}")
    console.print(f"probed in {data['wall_s']:.2f} s")


def draw_show(data: Mapping[str, Any], console: Any) -> None:
    # Exact text, never wrapped or styled: people copy these lines into files.
    def say(text: str = "", end: str = "\n") -> None:
        console.print(text, end=end, soft_wrap=True, markup=False, highlight=False)

    say(f"mirror {data['mirror']} (torch {data['variant']})")
    for kind, pick in data["picks"].items():
        say(f"  {kind:<7} {pick['mirror']:<10} {pick['url']}")
        if pick["note"]:
            say(f"          note: {pick['note']}")
    for where, text in data["files"].items():
        say(f"\n--- {where}")
        say(text, end="")
