"""`i2vkit models`: every model of the catalogue, by family, with its licence, size and presets,
and which presets fit this host with which memory strategy (the planner's estimate per GPU).

Plain data here (the `--json` output); i2vkit/cli/models.py draws it. Light: no torch.
"""

from __future__ import annotations

from typing import Any

from i2vkit import advice, catalogue, request
from i2vkit.host import Host, detect_host
from i2vkit.settings import Settings


def report(settings: Settings, family: str | None = None, host: Host | None = None) -> dict:
    """The catalogue's models (of `family`, if given) and what this host runs of each."""
    host = host or detect_host(settings.hub_cache)
    families = sorted({m.family for m in catalogue.models()})
    if family is not None and family not in families:
        from i2vkit.errors import UnknownNameError

        raise UnknownNameError("model family", family, families)
    models = [m for m in catalogue.models() if family in (None, m.family)]
    gpus = [{"index": g.index, "name": g.name, "memory_total_bytes": g.memory_total}
            for g in host.nvidia.gpus]  # fmt: skip
    return {
        "gpus": gpus,
        "gpu_reason": host.nvidia.reason if not gpus else "",
        "models": [_model(m, host) for m in models],
    }


def _model(m: catalogue.Model, host: Host) -> dict[str, Any]:
    presets = []
    for p in catalogue.presets():
        s = request.make(m.name, p.name)
        presets.append({"preset": p.name, "height": s.height, "width": s.width,
                        "frames": s.frames, "steps": s.steps})  # fmt: skip
    return {
        "name": m.name, "family": m.family, "repo": m.repo_id, "params": m.params,
        "download_bytes": m.download_bytes, "license": m.license, "gated": m.gated,
        "legacy": m.legacy, "twin": m.local, "fast": bool(m.lora or m.timesteps or m.base),
        "note": m.note, "presets": presets, "here": _here(m, host),
    }  # fmt: skip


def _here(m: catalogue.Model, host: Host) -> list[dict[str, Any]]:
    """Per device of this host: each preset, whether it fits and under which strategy. Without a
    GPU: a tiny twin runs every preset on the CPU; a full-size model needs a GPU."""
    if not host.nvidia.gpus:
        why = "tiny twin: runs on the CPU" if m.local else "needs a GPU"
        return [{"device": "cpu", "preset": p.name, "fits": m.local, "strategy": None,
                 "why": why} for p in catalogue.presets()]  # fmt: skip
    tier = advice.fit_presets(host, catalogue.presets(), m.name)
    return [{"device": f"cuda:{f.gpu}", "preset": f.preset, "fits": f.fits,
             "strategy": f.strategy, "why": f.reason} for f in tier.fits]  # fmt: skip
