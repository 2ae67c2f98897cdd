"""What `invoke generate` and `invoke calibrate` do, with progress bars and summaries.

The front door (tasks.py) calls one function here per task. Imports torch (through the
runner); tasks.py imports this module only inside the task.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from i2vkit import request
from i2vkit.runtime.loader import Loader
from i2vkit.runtime.pictures import load_image
from i2vkit.runtime.runner import Result, Runner
from i2vkit.settings import Settings

GIB = 1024**3


def _progress_bar(console: Any) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description:<8}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def generate(
    app: Settings,
    image: Path,
    out: Path,
    preset: str,
    overrides: dict[str, Any],
    dtype: str | None,
    device: str | None,
    console: Any,
) -> Result:
    """Load the model once, plan, generate one video to `out`, print a summary."""
    s = request.make(app.model, preset, **overrides)
    picture = load_image(image, str(image))
    for warning in request.quality_warnings(s):
        console.print(f"[yellow]warning:[/] {warning}")
    runner = Runner(Loader(app.model, app, device, dtype), app)
    with console.status(f"loading {app.model} ..."):
        loaded = runner.setup()
    console.print(
        f"loaded {app.model} on {loaded.device} in {loaded.dtype} ({loaded.seconds:.1f} s)"
    )
    with _progress_bar(console) as bar:
        tasks: dict[str, Any] = {}

        def on_progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total or 1)
            bar.update(tasks[stage], completed=done, total=total or 1)

        result = runner.generate(s, picture, out, on_progress)
    summarize(result, console)
    return result


def summarize(result: Result, console: Any) -> None:
    from rich.table import Table

    s = result.settings
    table = Table("stage", "seconds", title=f"{result.path} ({result.frames} frames)")
    for stage, seconds in result.seconds.items():
        table.add_row(stage, f"{seconds:.2f}")
    console.print(table)
    console.print(
        f"settings: {s.height}x{s.width}, {s.frames} frames, {s.steps} steps ({s.scheduler}), "
        f"guidance {s.guidance:g}, seed {s.seed}, fps {s.fps}, decode_chunk {s.decode_chunk}; "
        f"{result.device} {result.dtype}"
    )
    console.print(
        f"peak memory {result.peak_bytes / GIB:.2f} GiB (planner estimated "
        f"{result.estimate.peak / GIB:.2f} GiB; {result.estimate.source.split(':')[0]})"
        + ("; retried after out-of-memory with decode_chunk=1" if result.retried else "")
    )


def gradient(height: int, width: int) -> Any:
    """A deterministic test picture, so `invoke bench` needs no input file."""
    import numpy as np
    from PIL import Image

    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x * 255 // width, y * 255 // height, (x + y) % 256], axis=-1)
    return Image.fromarray(rgb.astype("uint8"))


def bench(
    app: Settings,
    image: Path | None,
    random_weights: bool,
    overrides: dict[str, Any],
    dtype: str | None,
    device: str | None,
    console: Any,
    repeat: int = 3,
    compile_unet: bool = False,
) -> dict[str, Any]:
    from i2vkit.runtime import bench as b

    s = request.make(app.model, "preview", prompt="a boat sails at sunset", **overrides)
    picture = load_image(image) if image else gradient(s.height, s.width)
    with console.status(f"benchmarking {app.model}: stock, then i2vkit ..."):
        result = b.run(app, app.model, s, picture, random_weights, device, dtype, repeat,
                       compile_unet)  # fmt: skip
    b.render(result, console)
    return result


def calibrate(app: Settings, dtype: str | None, device: str | None, console: Any) -> Any:
    from i2vkit.runtime import calibrate as cal

    with console.status(f"calibrating {app.model} at {len(cal.SIZES)} sizes ..."):
        profile = cal.calibrate(app, gradient(256, 256), device, dtype)
    path = cal.save(profile, app.home)
    console.print(
        f"{profile.model} on {profile.device} ({profile.dtype}): weights "
        f"{profile.weights_bytes / GIB:.2f} GiB, {profile.unet_bytes_per_position:g} B per latent "
        f"position, {profile.vae_bytes_per_pixel:g} B per decoded pixel, fixed "
        f"{profile.fixed_bytes / GIB:.2f} GiB; saved to {path}"
    )
    return profile
