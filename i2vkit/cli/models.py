"""`models`: the catalogue by family (licence, size, presets) and what fits this host."""

from __future__ import annotations

from typing import Any

from invoke import Context

from i2vkit.cli.base import command, settings


@command(
    help={
        "family": "only this family (i2vgen-xl, svd, wan, ltx, ltx2, hunyuan-video-1.5)",
        "json": "print the list as JSON",
    }
)
def models(c: Context, family: str | None = None, json: bool = False) -> None:
    """Every model by family: licence, size, presets, and which fit this host and how."""
    import json as json_module

    from rich.console import Console

    from i2vkit import listing

    data = listing.report(settings(c), family)
    if json:
        print(json_module.dumps(data, indent=2))
    else:
        draw(data, Console(soft_wrap=False))


def draw(data: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    gib = 1024**3
    if data["gpus"]:
        devices = ", ".join(f"GPU {g['index']} {g['name']} ({g['memory_total_bytes'] / gib:.0f} "
                            f"GiB)" for g in data["gpus"])  # fmt: skip
    else:
        devices = f"no GPU ({data['gpu_reason']}): the tiny twins run here, the rest need a GPU"
    console.print(f"this host: {devices}")
    for family in dict.fromkeys(m["family"] for m in data["models"]):
        table = Table("model", "params", "download", "licence", "presets: HxW, frames, steps",
                      "fits here (memory strategy)", title=f"family {family}",
                      show_lines=True)  # fmt: skip
        table.columns[0].no_wrap = True
        for m in (m for m in data["models"] if m["family"] == family):
            flags = (("tiny twin", m["twin"]), ("few-step", m["fast"]), ("legacy", m["legacy"]),
                     ("gated", m["gated"]))  # fmt: skip
            marks = [word for word, on in flags if on]
            name = m["name"] + (f"\n({', '.join(marks)})" if marks else "")
            presets = "\n".join(f"{p['preset']}: {p['height']}x{p['width']}, {p['frames']}, "
                                f"{p['steps']}" for p in m["presets"])  # fmt: skip
            table.add_row(name, _count(m["params"]), f"{m['download_bytes'] / 1e9:.1f} GB",
                          m["license"].split(" (")[0], presets, _here(m["here"]))  # fmt: skip
        console.print(table)


def _count(n: int) -> str:
    return f"{n / 1e9:.2f} B" if n >= 1e8 else f"{n / 1e6:.2f} M"


def _here(rows: list[dict[str, Any]]) -> str:
    lines = []
    for device in dict.fromkeys(r["device"] for r in rows):
        mine = [r for r in rows if r["device"] == device]
        fits = [f"{r['preset']}" + (f" ({r['strategy']})" if r["strategy"] else "")
                for r in mine if r["fits"]]  # fmt: skip
        lines.append(f"{device}: " + (", ".join(fits) if fits else f"none ({mine[0]['why']})"))
    return "\n".join(lines)
