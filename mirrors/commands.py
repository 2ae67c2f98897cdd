"""What `invoke mirrors` does: list the catalogue, probe it, or show one mirror's configs.

Each report is built as plain data first (the `--json` output) and only then drawn as tables
for people, so the two never disagree. `plan_for` is the one place a name becomes a Plan:
'auto' runs the probe, anything else is looked up (unknown names list the known ones).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from i2vkit.mirrors import render
from i2vkit.mirrors.catalogue import KINDS, Catalogue, Plan, TorchEndpoint, choose, load
from i2vkit.mirrors.probe import Measurement, ProbeResult, probe

SCHEMA = "i2vkit.mirrors/1"


def plan_for(catalogue: Catalogue, name: str, variant: str | None = None) -> Plan:
    """The plan for a mirror name, or for 'auto' the fastest answering mirror per kind."""
    if name != "auto":
        return choose(catalogue, name, variant)
    result = probe(catalogue, variant=variant)
    return choose(catalogue, "auto", variant, result.ranking())


def listing(catalogue: Catalogue) -> dict[str, Any]:
    mirrors = {}
    for name in catalogue.order:
        mirror = catalogue.mirror[name]
        offers = {}
        for kind in KINDS:
            endpoint = mirror.endpoint(kind)
            if endpoint is None:
                continue
            entry: dict[str, Any] = {"url": endpoint.url, "source": endpoint.source}
            if isinstance(endpoint, TorchEndpoint):
                entry |= {"layout": endpoint.layout, "variants": list(endpoint.variants)}
            offers[kind] = entry
        mirrors[name] = {"title": mirror.title, "offers": offers}
    gone = [g.model_dump() for g in catalogue.gone]
    return {"schema": SCHEMA, "order": list(catalogue.order), "mirrors": mirrors, "gone": gone}


def _measurement(m: Measurement) -> dict[str, Any]:
    return {
        "mirror": m.mirror,
        "kind": m.kind,
        "url": m.url,
        "ok": m.ok,
        "reason": m.reason,
        "connect_s": m.connect_s,
        "first_byte_s": m.first_byte_s,
        "sample_bytes": m.sample_bytes,
        "throughput_bps": m.throughput,
    }


def probe_report(result: ProbeResult) -> dict[str, Any]:
    winners = {k: (w.mirror if w else None) for k, w in result.winners().items()}
    return {
        "schema": SCHEMA,
        "wall_s": round(result.wall_s, 3),
        "variant": result.variant,
        "winners": winners,
        "measurements": [_measurement(m) for m in result.measurements],
    }


def show_report(plan: Plan, prefix: str = "<env>") -> dict[str, Any]:
    picks = {
        k: {"mirror": p.mirror, "url": plan.url(k), "note": p.note} for k, p in plan.picks.items()
    }
    return {
        "schema": SCHEMA,
        "mirror": plan.requested,
        "variant": plan.variant,
        "picks": picks,
        "failover": {k: list(v) for k, v in plan.chains.items()},
        "files": render.show(plan, prefix),
    }


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


def main(
    catalogue: Catalogue,
    *,
    probe_now: bool = False,
    show: str | None = None,
    as_json: bool = False,
    variant: str | None = None,
    prefix: str = "<env>",
    console: Any = None,
) -> dict[str, Any]:
    """`invoke mirrors [--probe] [--show NAME] [--json]`: print the report, return its data."""
    if show is not None:
        data, draw = show_report(plan_for(catalogue, show, variant), prefix), draw_show
    elif probe_now:
        data, draw = probe_report(probe(catalogue, variant=variant)), draw_probe
    else:
        data, draw = listing(catalogue), draw_listing
    if as_json:
        print(json.dumps(data, indent=2))
    else:
        if console is None:
            from rich.console import Console

            console = Console(soft_wrap=False)
        draw(data, console)
    return data


def run(
    custom: Mapping[str, Any] | None = None,
    *,
    probe_now: bool = False,
    show: str | None = None,
    as_json: bool = False,
    variant: str | None = None,
) -> dict[str, Any]:
    """The task's one call: load the catalogue (plus invoke.yaml's custom mirrors), then `main`.
    Raises ConfigError / UnknownNameError (both I2VKitError) on bad input."""
    return main(load(custom=custom), probe_now=probe_now, show=show, as_json=as_json,
                variant=variant)  # fmt: skip
