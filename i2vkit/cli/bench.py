"""`bench`: the model's diffusers documentation example against i2vkit on the same job, each
acceleration alone and all together, drawn as a table of ratios (runtime/bench.py measures)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from invoke import Context

from i2vkit import request
from i2vkit.cli.base import command, runtime_settings
from i2vkit.errors import ConfigError
from i2vkit.settings import Settings


@command(
    help={
        "model": "model to benchmark (default: demo)",
        "random-weights": "build the full-size architecture with random weights (no download)",
        "image": "input image (default: a generated gradient)",
        "preset": "the job's preset (default: preview); the flags below override it",
        "height": "frame height", "width": "frame width", "frames": "frames",
        "steps": "denoising steps", "seed": "random seed",
        "dtype": "i2vkit's dtype (default: by device)", "device": "cpu or cuda:N",
        "repeat": "timed runs of each (the median is reported; default 3)",
        "options": "accelerations to measure one by one and together, comma-separated: "
        "attention, compile, cache, fp8 (default: all on a GPU, cache,fp8 on a CPU)",
        "json": "also write the figures as JSON to this file",
        "all-families": "one tiny twin per family (docs example vs i2vkit), then one table: "
        "s/step, end to end, peak memory, the planner's estimate, the FLOP floor",
    }
)  # fmt: skip
def bench(
    c: Context,
    model: str = "demo",
    random_weights: bool = False,
    image: str | None = None,
    preset: str = "preview",
    height: int | None = None,
    width: int | None = None,
    frames: int | None = None,
    steps: int | None = None,
    seed: int = 0,
    dtype: str | None = None,
    device: str | None = None,
    repeat: int = 3,
    options: str | None = None,
    json: str | None = None,
    all_families: bool = False,
) -> None:
    """The model's diffusers docs example vs i2vkit on the same job, as ratios."""
    from rich.console import Console

    app = runtime_settings(c, model=model)
    if all_families:
        given = [flag for flag, value in (("--random-weights", random_weights),
                 ("--height", height), ("--width", width), ("--frames", frames),
                 ("--options", options)) if value]  # fmt: skip
        if given:  # each twin runs its own preset's size, with no options: refuse, not ignore
            raise ConfigError(
                f"--all-families runs each family's twin at its own {preset} size without "
                f"options: {', '.join(given)} cannot apply; drop it (--preset, --steps, --seed, "
                "--repeat, --dtype and --device do apply)"
            )
        results = [
            _bench(dataclasses.replace(app, model=twin), Path(image) if image else None,
                   False, preset, {"seed": seed, "steps": steps}, dtype, device, Console(),
                   int(repeat), ())
            for twin in family_twins()
        ]  # fmt: skip
        draw_families(results, app, Console())
        _write_json(json, {"families": results})
        return
    sizes = dict(height=height, width=width, frames=frames, steps=steps, seed=seed)
    chosen = tuple(o.strip() for o in options.split(",") if o.strip()) if options else None
    result = _bench(app, Path(image) if image else None, random_weights, preset, sizes, dtype,
                    device, Console(), int(repeat), chosen)  # fmt: skip
    _write_json(json, result)


def _write_json(path: str | None, figures: dict[str, Any]) -> None:
    if path:
        from i2vkit.files import write_text

        write_text(Path(path), bench_json(figures))


def _bench(
    app: Settings,
    image: Path | None,
    random_weights: bool,
    preset: str,
    overrides: dict[str, Any],
    dtype: str | None,
    device: str | None,
    console: Any,
    repeat: int = 3,
    options: tuple[str, ...] | None = None,
) -> dict[str, Any]:
    from i2vkit.runtime import bench as b
    from i2vkit.runtime.pictures import gradient_picture, load_image

    s = request.make(app.model, preset, prompt="a boat sails at sunset", **overrides)
    picture = load_image(image) if image else gradient_picture(s.height, s.width)
    with console.status(f"benchmarking {app.model}: the docs example, then i2vkit ..."):
        result = b.run(app, app.model, s, picture, random_weights, device, dtype, repeat,
                       options)  # fmt: skip
    _draw_bench(result, console)
    return result


def bench_json(result: dict[str, Any]) -> str:
    import dataclasses
    import json

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return dataclasses.asdict(value)
        if hasattr(value, "model_dump"):
            return value.model_dump()
        return str(value)

    return json.dumps(result, default=plain, indent=2) + "\n"


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    raise AssertionError  # unreachable: the loop returns at GiB


def _draw_bench(result: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    floor = result["floor_seconds"]
    s, docs_s = result["settings"], result["docs_settings"]
    runs = result["runs"]
    docs, plain = runs[0], runs[1]
    title = (f"{result['model']} on {result['device']}: {s.height}x{s.width}, {s.frames} frames,"
             f" {s.steps} steps, seed {s.seed}; median of {result['repeat']}"
             + (", random weights" if result["random_weights"] else ""))  # fmt: skip
    table = Table("run", "dtype", "steps", "end-to-end s", "vs docs", "denoise s", "calls",
                  "skipped", "denoiser weights", "in blocks", "peak", "distance",
                  title=title)  # fmt: skip
    for r in runs:
        table.add_row(
            r.name, r.dtype, str(r.steps), f"{r.seconds:.2f}", f"{docs.seconds / r.seconds:.2f}x",
            f"{r.denoise_seconds:.2f}" if r.denoise_seconds else "-", str(r.calls),
            f"{(r.calls - r.computed) / max(r.calls, 1):.0%}", _bytes(r.weight_bytes),
            _bytes(r.block_bytes), _bytes(r.peak_bytes),
            "-" if r.distance is None else f"{r.distance:.4f}",
        )  # fmt: skip
    console.print(table)
    if docs_s.steps != s.steps:
        console.print(f"docs example at the base model's {docs_s.steps} steps, guidance "
                      f"{docs_s.guidance:g}: what the few-step entry replaces")  # fmt: skip
    best = min(runs[1:], key=lambda r: r.seconds)
    console.print(
        f"i2vkit vs the docs example ({result['docs_source']}): "
        f"{docs.seconds / plain.seconds:.2f}x as shipped, {docs.seconds / best.seconds:.2f}x "
        f"with {best.name}; peak memory "
        f"{plain.peak_bytes / max(docs.peak_bytes, 1):.2f} of the example's"
    )
    if floor is None:
        console.print("no FLOP count for this family: no floor")
    else:
        _draw_floor(result, docs, floor, console)
    for r in runs:
        if r.note:
            console.print(f"{r.name}: {r.note}")
    for note in result["notes"]:
        console.print(f"note: {note}")


def _flops(n: float) -> str:
    for unit, scale in (("PFLOP", 1e15), ("TFLOP", 1e12), ("GFLOP", 1e9)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n / 1e6:.2f} MFLOP"


def _draw_floor(result: dict[str, Any], docs: Any, floor: float, console: Any) -> None:
    console.print(
        f"docs job: {_flops(result['flops']['total'])}; measured matmul rate "
        f"{_flops(result['matmul_rate'])}/s ({result['dtype']}); floor {floor:.3g} s "
        f"(the docs example is {docs.seconds / floor:.1f}x the floor)"
    )


def family_twins() -> list[str]:
    """One tiny twin per family: the catalogue's first of each (not a few-step entry)."""
    from i2vkit import catalogue

    twins: dict[str, str] = {}
    for m in catalogue.models():
        if m.local and not m.base and not m.lora:
            twins.setdefault(m.family, m.name)
    return list(twins.values())


def draw_families(results: list[dict[str, Any]], app: Settings, console: Any) -> None:
    """Per family: steps, s/step, end to end (i2vkit and the docs example), peak memory, the
    planner's estimate for the job, and how far the end to end is from the FLOP floor."""
    from rich.table import Table

    from i2vkit import catalogue, planner

    table = Table("family", "model", "steps", "s/step", "end to end s", "vs docs", "peak",
                  "planner estimate", "x floor", title="every family, tiny twins, "
                  f"{results[0]['device']}")  # fmt: skip
    for r in results:
        docs, mine, s = r["runs"][0], r["runs"][1], r["settings"]
        profile = planner.profile_for(r["model"], r["device"].split(":")[0], r["dtype"], app.home)
        est = planner.estimate(s, profile)
        floor = r["job_floor_seconds"]
        table.add_row(
            catalogue.model(r["model"]).family, r["model"], str(s.steps),
            f"{mine.denoise_seconds / s.steps:.3f}" if mine.denoise_seconds else "-",
            f"{mine.seconds:.2f}", f"{docs.seconds / mine.seconds:.2f}x",
            _bytes(mine.peak_bytes), f"{_bytes(est.peak)} ({est.source.split(':')[0]})",
            f"{mine.seconds / floor:.0f}x" if floor else "-",
        )  # fmt: skip
    console.print(table)
