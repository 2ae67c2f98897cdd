"""`i2vkit doctor`: the host and the decisions taken from it, as a versioned report.

`report()` builds the report as plain data (the `--json` output, schema in
i2vkit/data/doctor.schema.json); i2vkit/cli/doctor.py turns it into tables for people. The schema's
version is bumped on any incompatible change; fields are only ever added within a version.
"""

from __future__ import annotations

import json
from importlib import metadata
from typing import Any

from i2vkit import __version__, advice, catalogue
from i2vkit.data import packaged
from i2vkit.host import Host, detect_host
from i2vkit.settings import Settings

SCHEMA = "i2vkit.doctor/1"
SCHEMA_PATH = packaged("i2vkit", "data", "doctor.schema.json")


def installed_torch() -> dict[str, Any]:
    """The torch in this interpreter, read from its metadata (never imported: too slow, and
    a broken CUDA install would crash doctor). '2.13.0+cu126' -> variant 'cu126'."""
    try:
        version = metadata.version("torch")
    except metadata.PackageNotFoundError:
        return {"version": None, "variant": None}
    local = version.partition("+")[2]
    # A plain PyPI wheel has no local tag: CUDA on Linux x86_64, CPU elsewhere.
    return {"version": version, "variant": local or "pypi-default"}


def _dtype(host: Host) -> advice.Decision:
    gpus = host.nvidia.gpus
    if not gpus:
        return advice.Decision("fp32", "CPU: half precision is slower than fp32 on most CPUs")
    if all(g.bf16 for g in gpus):
        caps = ", ".join(g.capability_str for g in gpus)
        return advice.Decision("bf16", f"compute {caps} >= 8.0 has bf16 tensor cores")
    return advice.Decision("fp16", "a GPU below compute 8.0 has no bf16 tensor cores")


def report(settings: Settings, model_name: str | None = None) -> dict[str, Any]:
    host = detect_host(settings.hub_cache)
    model = catalogue.model(model_name or settings.model)
    variants = catalogue.torch_variants()
    variant = advice.choose_torch_variant(host, variants)
    tier = advice.fit_presets(host, catalogue.presets(), model.name)
    problems, warnings = advice.check_host(host, model)
    torch = installed_torch()
    if torch["version"] and torch["variant"] != variant.value:
        warnings += (
            f"this interpreter has torch {torch['version']} but the host fits {variant.value}: "
            "`i2vkit setup` builds an env with the right one",
        )
    index_url = next((v.index_url for v in variants.variant if v.name == variant.value), None)
    return {
        "schema": SCHEMA,
        "i2vkit": __version__,
        "host": _host(host),
        "nvidia": _nvidia(host),
        "decisions": {
            "torch_variant": {**_decision(variant), "index_url": index_url},
            "tier": {
                "value": tier.tier,
                "reason": tier.reason,
                "presets": list(tier.presets),
                "fits": [vars(f) for f in tier.fits],
            },
            "dtype": _decision(_dtype(host)),
        },
        "torch_installed": torch,
        "model": {"name": model.name, "download_bytes": model.download_bytes},
        "problems": list(problems),
        "warnings": list(warnings),
        "ok": not problems,
    }


def _decision(decision: advice.Decision) -> dict[str, Any]:
    return {
        "value": decision.value,
        "reason": decision.reason,
        "facts": [vars(f) for f in decision.facts],
    }


def _host(host: Host) -> dict[str, Any]:
    return {
        "os": host.os,
        "os_release": host.os_release,
        "arch": host.arch,
        "python": ".".join(map(str, host.python)),
        "cpu": {"model": host.cpu_model, "logical": host.cpu_count, "physical": host.cpu_physical},
        "memory": {"total_bytes": host.ram_total, "available_bytes": host.ram_available},
        "disk": {"path": str(host.disk_path), "free_bytes": host.disk_free},
    }


def _nvidia(host: Host) -> dict[str, Any]:
    nvidia = host.nvidia
    return {
        "driver_version": nvidia.driver_version,
        "cuda_version": nvidia.cuda_version_str,
        "reason": nvidia.reason,
        "gpus": [
            {
                "index": g.index,
                "name": g.name,
                "uuid": g.uuid,
                "memory_total_bytes": g.memory_total,
                "memory_free_bytes": g.memory_free,
                "compute_capability": g.capability_str,
                "bf16": g.bf16,
            }
            for g in nvidia.gpus
        ],
    }


def to_json(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, sort_keys=False)
