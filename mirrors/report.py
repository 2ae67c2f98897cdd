"""The mirror reports as plain data (the `--json` output of `i2vkit mirrors`): the catalogue,
a probe, and one mirror's configuration. i2vkit/cli/mirrors.py draws them for people, from this
same data, so the two never disagree."""

from __future__ import annotations

from typing import Any

from i2vkit.mirrors import render
from i2vkit.mirrors.catalogue import KINDS, Catalogue, TorchEndpoint
from i2vkit.mirrors.choose import MirrorPlan
from i2vkit.mirrors.probe import Measurement, ProbeResult

SCHEMA = "i2vkit.mirrors/1"


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


def show_report(plan: MirrorPlan, prefix: str = "<env>") -> dict[str, Any]:
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
