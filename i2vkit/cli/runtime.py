"""`generate`, `bench`, `calibrate` and `serve`: the tasks that need the runtime layer (torch).

Each re-runs itself inside the env `i2vkit setup` built when this interpreter lacks the runtime
(i2vkit.cli.base.runtime_settings), then imports the runtime: importing this module stays light.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from invoke import Context, Exit

from i2vkit import request, speed
from i2vkit.cli.base import command, runtime_settings
from i2vkit.settings import Settings

GIB = 1024**3
SPEED_HELP = {
    "attention": "attention kernel: sdpa (default), auto (the best installed for this GPU), "
    "flash3, sage or flash; falls back to sdpa and says why",
    "compile": "regional torch.compile of the transformer blocks (warm-up takes longer)",
    "cache": "none (default) or fbcache: skip the transformer's rest when its first block "
    "barely changed",
    "cache-threshold": "fbcache's threshold (default 0.05; higher skips more, drifts more)",
}
MEMORY_HELP = (
    "where the weights live: auto (the planner picks the fastest that fits), full, fp8, "
    "offload, fp8+offload, cpu-offload or lean"
)


@command(
    help={
        "image": "input image (PNG, JPEG, WebP, ...)",
        "prompt": "what should happen in the video",
        "model": "model name from the catalogue (default: settings' model)",
        "preset": "preview, entry, mainstream or pro (default: preview)",
        "out": "output mp4 path (default: out.mp4)",
        "height": "frame height (a multiple of the model's: 64 for I2VGen-XL and SVD, 16 or 32 "
        "for Wan)",
        "width": "frame width (the same multiple)",
        "frames": "number of frames (Wan: 4k+1, e.g. 81)",
        "steps": "denoising steps",
        "guidance": "classifier-free guidance scale",
        "seed": "random seed (same seed, same video)",
        "fps": "frames per second of the mp4 (and I2VGen-XL's fps condition)",
        "decode-chunk": "frames decoded at once by the VAE (lower uses less memory)",
        "scheduler": "the model's: ddim, dpm++ or euler (I2VGen-XL, SVD); unipc or euler (Wan)",
        "negative-prompt": "what to avoid",
        "dtype": "fp32, fp16 or bf16 (default: by device)",
        "device": "cpu or cuda:N (default: cuda:0 when present)",
        "memory": MEMORY_HELP,
        **SPEED_HELP,
    }
)
def generate(
    c: Context,
    image: str,
    prompt: str = "",
    model: str | None = None,
    preset: str = "preview",
    out: str = "out.mp4",
    height: int | None = None,
    width: int | None = None,
    frames: int | None = None,
    steps: int | None = None,
    guidance: float | None = None,
    seed: int | None = None,
    fps: int | None = None,
    decode_chunk: int | None = None,
    scheduler: str | None = None,
    negative_prompt: str | None = None,
    dtype: str | None = None,
    device: str | None = None,
    memory: str = "auto",
    attention: str = "sdpa",
    compile: bool = False,
    cache: str = "none",
    cache_threshold: float | None = None,
) -> None:
    """Generate one video from an image and a prompt."""
    from rich.console import Console

    app = runtime_settings(c, model=model)  # first: it may re-run this task inside the env
    overrides = dict(
        prompt=prompt, height=height, width=width, frames=frames, steps=steps,
        guidance=guidance, seed=seed, fps=fps, decode_chunk=decode_chunk, scheduler=scheduler,
        negative_prompt=negative_prompt,
    )  # fmt: skip
    options = speed.parse(attention, compile, cache, cache_threshold)
    _generate(app, Path(image), Path(out), preset, overrides, dtype, device, memory, Console(),
              options)  # fmt: skip


@command(
    help={
        "model": "model to calibrate (default: settings' model)",
        "dtype": "fp32, fp16 or bf16 (default: by device)",
        "device": "cpu or cuda:N",
    }
)
def calibrate(
    c: Context, model: str | None = None, dtype: str | None = None, device: str | None = None
) -> None:
    """Measure the model's peak memory and save the planner's profile for this host."""
    from rich.console import Console

    _calibrate(runtime_settings(c, model=model), dtype, device, Console())


@command(
    help={
        "model": "model to serve (default: settings' model)",
        "host": "address to bind (default 127.0.0.1; others need --token or --insecure)",
        "port": "port (default 7860)",
        "preset": "the page's default preset (default: preview)",
        "queue-size": "jobs queued or running before 429 (default 16)",
        "token": "API token (default: $I2VKIT_TOKEN)",
        "insecure": "allow binding beyond loopback without a token",
        "allow-host": "Host names the server answers to without a token, comma-separated "
        "(default: loopback and IP addresses only; a reverse proxy's name)",
        "stay-on-failure": "stay up as FAILED when the model does not load (default: exit 1)",
        "dtype": "fp32, fp16 or bf16 (default: by device)",
        "device": "devices to run workers on, comma-separated (cuda:1; cpu,cpu: two CPU "
        "workers); default: a worker process per GPU",
        "cluster": "serve on a Ray cluster: the head's HOST:6379, or auto (RAY_ADDRESS); "
        "a worker per GPU of the cluster (needs i2vkit[cluster])",
        "parallel": "devices per job (Wan): a worker is a group of N processes (default 1)",
        "parallel-mode": "ulysses (context parallel; default) or cfg (the guidance branches, N=2)",
        "retention-hours": "delete finished jobs and their files after this long (default 24; "
        "0: keep them)",
        "interrupted": "retry or fail jobs a crash interrupted (default: retry)",
        "max-upload-mb": "largest image upload accepted (default 20)",
        "memory": MEMORY_HELP,
        **SPEED_HELP,
    }
)
def serve(
    c: Context,
    model: str | None = None,
    host: str = "127.0.0.1",
    port: int = 7860,
    preset: str = "preview",
    queue_size: int = 16,
    token: str | None = None,
    insecure: bool = False,
    allow_host: str | None = None,
    stay_on_failure: bool = False,
    dtype: str | None = None,
    device: str | None = None,
    retention_hours: float = 24.0,
    interrupted: str = "retry",
    max_upload_mb: float = 20.0,
    memory: str = "auto",
    attention: str = "sdpa",
    compile: bool = False,
    cache: str = "none",
    cache_threshold: float | None = None,
    cluster: str | None = None,
    parallel: int = 1,
    parallel_mode: str = "ulysses",
) -> None:
    """Serve the model over HTTP: job API under /v1, progress events, the web page at /."""
    app = runtime_settings(c, model=model, token=token)
    from i2vkit.errors import ConfigError
    from i2vkit.runtime.server import serve as run_server
    from i2vkit.runtime.server.service import ServeConfig
    from i2vkit.runtime.speed import refusals

    options = speed.parse(attention, compile, cache, cache_threshold)
    refused = refusals(app.model, options)
    if refused:  # before the server starts, not as its FAILED state
        raise ConfigError("; ".join(refused))
    config = ServeConfig(
        app=app, model=app.model, host=host, port=int(port), preset=preset,
        queue_size=int(queue_size), token=app.token, insecure=insecure,
        allowed_hosts=tuple(h.strip() for h in (allow_host or "").split(",") if h.strip()),
        stay_on_failure=stay_on_failure, dtype=dtype, devices=_devices(device), cluster=cluster,
        parallel=int(parallel), parallel_mode=parallel_mode,
        retention_hours=float(retention_hours), interrupted=interrupted,
        startup_hook=app.startup_hook, max_upload_bytes=int(float(max_upload_mb) * 2**20),
        memory=memory, options=options,
    )  # fmt: skip
    code = run_server(config)
    if code:
        raise Exit(code=code)


def _devices(given: str | None) -> tuple[str, ...]:
    from i2vkit.errors import ConfigError

    devices = tuple(d.strip() for d in (given or "").split(",") if d.strip())
    for device in devices:
        if device != "cpu" and not re.fullmatch(r"cuda:\d+", device):
            raise ConfigError(f"--device {device!r} is not cpu or cuda:N (e.g. cuda:0,cuda:1)")
    return devices


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


def _generate(
    app: Settings,
    image: Path,
    out: Path,
    preset: str,
    overrides: dict[str, Any],
    dtype: str | None,
    device: str | None,
    memory: str,
    console: Any,
    options: Any = None,
) -> Any:
    """Load the model once, plan, generate one video to `out`, print a summary."""
    from i2vkit.runtime.loader import Loader
    from i2vkit.runtime.pictures import load_image
    from i2vkit.runtime.runner import Runner

    s = request.make(app.model, preset, **overrides)
    picture = load_image(image, str(image))
    for warning in request.quality_warnings(s):
        console.print(f"[yellow]warning:[/] {warning}")
    runner = Runner(Loader(app.model, app, device, dtype, memory, sized=s, options=options), app)
    with console.status(f"loading {app.model} ..."):
        loaded = runner.setup()
    console.print(
        f"loaded {app.model} on {loaded.device} in {loaded.dtype}, "
        f"{loaded.strategy.describe()} ({loaded.seconds:.1f} s)"
    )
    console.print(f"memory: {loaded.why}")
    with _progress_bar(console) as bar:
        tasks: dict[str, Any] = {}

        def on_progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total or 1)
            bar.update(tasks[stage], completed=done, total=total or 1)

        result = runner.generate(s, picture, out, on_progress)
    summarize(result, console)
    return result


def summarize(result: Any, console: Any) -> None:
    from rich.table import Table

    s = result.request
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
    console.print("options: " + ", ".join(f"{k} {v}" for k, v in result.options.items()))


def _calibrate(app: Settings, dtype: str | None, device: str | None, console: Any) -> Any:
    from i2vkit.runtime import calibrate as cal
    from i2vkit.runtime.pictures import gradient_picture

    with console.status(f"calibrating {app.model} at {len(cal.SIZES)} sizes ..."):
        profile = cal.calibrate(app, gradient_picture(256, 256), device, dtype)
    path = cal.save(profile, app.home)
    console.print(
        f"{profile.model} on {profile.device} ({profile.dtype}): weights "
        f"{profile.weights_bytes / GIB:.2f} GiB, {profile.unet_bytes_per_position:g} B per latent "
        f"position, {profile.vae_bytes_per_pixel:g} B per decoded pixel, fixed "
        f"{profile.fixed_bytes / GIB:.2f} GiB; saved to {path}"
    )
    return profile
