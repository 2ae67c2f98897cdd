"""i2vkit's front door: each task parses its flags, calls one library function, and turns the
project's own errors into `invoke.Exit` with the message. No logic lives here.

Only the light layer may be imported at module level: `invoke --list` must work before torch is
installed.
"""

from __future__ import annotations

import os
import shlex
import sys

from invoke import Collection, Context, Exit, task

from i2vkit.errors import I2VKitError
from i2vkit.settings import Settings, resolve

TEST_PATHS = ["tests"]
LINT_PATHS = ["tasks.py", "i2vkit", "mirrors", "env", "images", "runtime", "tests", "benchmarks"]


def _settings(c: Context, **flags: object) -> Settings:
    return resolve(flags, dict(c.config.get("i2vkit", {})), os.environ)


@task(
    help={
        "json": "print the report as JSON (schema: runtime/data/doctor.schema.json)",
        "model": "model whose disk needs are checked (default: settings' model)",
    }
)
def doctor(c: Context, json: bool = False, model: str | None = None) -> None:
    """Describe this host and say which torch build, tier and presets fit it."""
    from rich.console import Console

    from i2vkit import doctor as doc

    try:
        data = doc.report(_settings(c), model)
    except I2VKitError as error:
        raise Exit(f"doctor: {error}", code=2) from error
    if json:
        print(doc.to_json(data))
    else:
        doc.render(data, Console(soft_wrap=False))
    if not data["ok"]:
        raise Exit(code=1)


@task(
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
    from i2vkit.mirrors import commands

    try:
        commands.run(
            dict(c.config.get("mirrors", {})),
            probe_now=probe,
            show=show,
            as_json=json,
            variant=variant,
        )
    except I2VKitError as error:
        raise Exit(f"mirrors: {error}", code=2) from error


@task(
    help={
        "mirror": "tuna, aliyun, ustc, sjtu, default, a custom mirror, or auto (probe)",
        "model": "model whose weights to fetch (default: settings' model)",
        "backend": "auto (mamba if on PATH, else rattler with a conda lock, else venv), "
        "mamba, rattler or venv",
        "cuda": "torch wheel variant: auto (from `invoke doctor`), cpu, cu126, cu129, ...",
        "prefix": "build the env exactly here (default: $I2VKIT_HOME/envs/default)",
        "no-weights": "build the env only",
        "weights-only": "fetch the weights only",
        "wheelhouse": "a local folder of wheels tried after every mirror "
        "(default: the host pip's find-links folder, if any)",
        "dry-run": "print the plan and change nothing (no network unless --mirror auto)",
        "json": "print the plan and the result as JSON",
        "lock": "the pip layer's lockfile (default: env/requirements/runtime.txt)",
        "global-config": "also point your own pip, uv and conda configuration at the mirror "
        "(by default only the env's own config files are written)",
    }
)
def setup(
    c: Context,
    mirror: str | None = None,
    model: str | None = None,
    backend: str = "auto",
    cuda: str = "auto",
    prefix: str | None = None,
    no_weights: bool = False,
    weights_only: bool = False,
    wheelhouse: str | None = None,
    dry_run: bool = False,
    json: bool = False,
    lock: str | None = None,
    global_config: bool = False,
) -> None:
    """Build the locked environment (torch for this host's CUDA) and fetch the model."""
    from pathlib import Path

    from rich.console import Console

    from i2vkit.env import commands
    from i2vkit.env.plan import Options

    app = _settings(c, model=model, mirror=mirror)
    options = Options(
        mirror=app.mirror, model=app.model, backend=backend, cuda=cuda,
        prefix=Path(prefix).absolute() if prefix else None, env=not weights_only,
        weights=not no_weights, wheelhouse=commands.wheelhouse(wheelhouse),
        custom_mirrors=dict(c.config.get("mirrors", {})),
        lock=Path(lock).absolute() if lock else None, global_config=global_config,
    )  # fmt: skip
    try:
        commands.setup(options, app, dry_run, json, Console())
    except I2VKitError as error:
        raise Exit(f"setup: {error}", code=2) from error


@task(
    help={
        "mirror": "solve through this mirror (the lockfiles keep canonical URLs)",
        "platform": "conda platforms to lock (repeatable; default: the spec's)",
        "pip-only": "lock only the pip layer (env/requirements/runtime.txt)",
        "conda-only": "lock only the conda layer (env/conda-lock.yml)",
    },
    iterable=["platform"],
)
def lock(
    c: Context,
    mirror: str | None = None,
    platform: list[str] | None = None,
    pip_only: bool = False,
    conda_only: bool = False,
) -> None:
    """Regenerate the lockfiles (pip layer with uv, conda layer with py-rattler)."""
    from i2vkit.env import lock as locking
    from i2vkit.mirrors import catalogue as mirror_catalogue
    from i2vkit.mirrors.commands import plan_for

    app = _settings(c, mirror=mirror)
    try:
        catalogue = mirror_catalogue.load(custom=dict(c.config.get("mirrors", {})))
        plan = plan_for(catalogue, app.mirror)
        for path in locking.lock(catalogue, plan, not conda_only, not pip_only, platform):
            print(f"wrote {path}")
    except I2VKitError as error:
        raise Exit(f"lock: {error}", code=2) from error


def _runtime(c: Context, **flags: object) -> Settings:
    """Settings for a runtime task, re-running it inside the setup env when needed."""
    from i2vkit.env.runner import ensure_runtime

    app = _settings(c, **flags)
    try:
        ensure_runtime(app)
    except I2VKitError as error:
        raise Exit(str(error), code=2) from error
    return app


@task(
    help={
        "image": "input image (PNG, JPEG, WebP, ...)",
        "prompt": "what should happen in the video",
        "model": "model name from the catalogue (default: settings' model)",
        "preset": "preview, entry, mainstream or pro (default: preview)",
        "out": "output mp4 path (default: out.mp4)",
        "height": "frame height (multiple of 64)",
        "width": "frame width (multiple of 64)",
        "frames": "number of frames",
        "steps": "denoising steps",
        "guidance": "classifier-free guidance scale",
        "seed": "random seed (same seed, same video)",
        "fps": "frames per second of the mp4 (and I2VGen-XL's fps condition)",
        "decode-chunk": "frames decoded at once by the VAE (lower uses less memory)",
        "scheduler": "ddim, dpm++ or euler",
        "negative-prompt": "what to avoid",
        "dtype": "fp32, fp16 or bf16 (default: by device)",
        "device": "cpu or cuda:N (default: cuda:0 when present)",
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
) -> None:
    """Generate one video from an image and a prompt."""
    from pathlib import Path

    from rich.console import Console

    app = _runtime(c, model=model)  # first: it may re-run this task inside the setup env
    from i2vkit.runtime import commands

    overrides = dict(
        prompt=prompt, height=height, width=width, frames=frames, steps=steps,
        guidance=guidance, seed=seed, fps=fps, decode_chunk=decode_chunk, scheduler=scheduler,
        negative_prompt=negative_prompt,
    )  # fmt: skip
    try:
        commands.generate(
            app, Path(image), Path(out), preset, overrides, dtype, device,
            Console(),
        )  # fmt: skip
    except I2VKitError as error:
        raise Exit(f"generate: {error}", code=2) from error


@task(
    help={
        "model": "model to benchmark (default: demo)",
        "random-weights": "build the full-size architecture with random weights (no download)",
        "image": "input image (default: a generated gradient)",
        "height": "frame height", "width": "frame width", "frames": "frames",
        "steps": "denoising steps", "seed": "random seed",
        "dtype": "the tuned run's dtype (default: by device)", "device": "cpu or cuda:N",
        "repeat": "timed runs of each (the median is reported; default 3)",
        "compile": "torch.compile the tuned run's UNet (compile time is in the warm-up)",
    }
)  # fmt: skip
def bench(
    c: Context,
    model: str = "demo",
    random_weights: bool = False,
    image: str | None = None,
    height: int = 256,
    width: int = 256,
    frames: int = 8,
    steps: int = 10,
    seed: int = 0,
    dtype: str | None = None,
    device: str | None = None,
    repeat: int = 3,
    compile: bool = False,
) -> None:
    """Stock diffusers vs i2vkit's runtime on the same job, as ratios."""
    from pathlib import Path

    from rich.console import Console

    app = _runtime(c, model=model)
    from i2vkit.runtime import commands

    try:
        commands.bench(
            app, Path(image) if image else None, random_weights,
            dict(height=height, width=width, frames=frames, steps=steps, seed=seed),
            dtype, device, Console(), repeat, compile,
        )  # fmt: skip
    except I2VKitError as error:
        raise Exit(f"bench: {error}", code=2) from error


@task(
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

    app = _runtime(c, model=model)
    from i2vkit.runtime import commands

    try:
        commands.calibrate(app, dtype, device, Console())
    except I2VKitError as error:
        raise Exit(f"calibrate: {error}", code=2) from error


@task(
    help={
        "model": "model to serve (default: settings' model)",
        "host": "address to bind (default 127.0.0.1; others need --token or --insecure)",
        "port": "port (default 7860)",
        "preset": "the page's default preset (default: preview)",
        "queue-size": "jobs queued or running before 429 (default 16)",
        "token": "API token (default: $I2VKIT_TOKEN)",
        "insecure": "allow binding beyond loopback without a token",
        "stay-on-failure": "stay up as FAILED when the model does not load (default: exit 1)",
        "dtype": "fp32, fp16 or bf16 (default: by device)",
        "device": "one device (cpu, cuda:1); default: a worker per GPU",
        "retention-hours": "delete finished jobs' files after this long (default 24)",
        "interrupted": "retry or fail jobs a crash interrupted (default: retry)",
        "max-upload-mb": "largest image upload accepted (default 20)",
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
    stay_on_failure: bool = False,
    dtype: str | None = None,
    device: str | None = None,
    retention_hours: float = 24.0,
    interrupted: str = "retry",
    max_upload_mb: float = 20.0,
) -> None:
    """Serve the model over HTTP: job API under /v1, progress events, the web page at /."""
    app = _runtime(c, model=model, token=token)
    from i2vkit.runtime.server import main
    from i2vkit.runtime.server.service import ServeConfig

    try:
        config = ServeConfig(
            app=app, model=app.model, host=host, port=int(port), preset=preset,
            queue_size=int(queue_size), token=app.token,
            insecure=insecure, stay_on_failure=stay_on_failure, dtype=dtype,
            devices=(device,) if device else (), retention_hours=float(retention_hours),
            interrupted=interrupted, startup_hook=app.startup_hook,
            max_upload_bytes=int(float(max_upload_mb) * 2**20),
        )  # fmt: skip
        code = main(config)
    except I2VKitError as error:
        raise Exit(f"serve: {error}", code=2) from error
    if code:
        raise Exit(code=code)


@task(
    name="build-image",
    help={
        "mirror": "tuna, aliyun, ustc, sjtu, default, a custom mirror, or auto (probe)",
        "model": "model baked into the image (default: settings' model)",
        "cuda": "torch wheel variant: auto (from `invoke doctor`), cpu, cu126, cu129, cu130, cu132",
        "tag": "image tag (default: i2vkit/<model>:<torch>-<variant>)",
        "push": "push the tag after the build (log in with `docker login` first)",
        "dry-run": "print the plan (base, build args, stages, files, size); no engine, no network",
        "no-weights": "bake no weights (mount an HF cache at run time)",
        "base": "base image (default: debian:bookworm-slim; the host's driver comes from --gpus)",
        "json": "print the plan as JSON",
    },
)
def build_image(
    c: Context,
    mirror: str | None = None,
    model: str | None = None,
    cuda: str = "auto",
    tag: str | None = None,
    push: bool = False,
    dry_run: bool = False,
    no_weights: bool = False,
    base: str | None = None,
    json: bool = False,
) -> None:
    """Build the service image (locked env, baked weights, `invoke serve`) through the Docker
    Engine API."""
    from rich.console import Console

    from i2vkit.images import commands
    from i2vkit.images.plan import DEFAULT_BASE

    app = _settings(c, model=model, mirror=mirror)
    try:
        commands.build_image(
            app, app.model, app.mirror, cuda, tag, push, dry_run, no_weights,
            base or DEFAULT_BASE, dict(c.config.get("mirrors", {})), json, Console(),
        )  # fmt: skip
    except I2VKitError as error:
        raise Exit(f"build-image: {error}", code=2) from error


@task(
    name="run-image",
    help={
        "image": "the image tag (as `invoke build-image` printed it)",
        "port": "host port for the service (default 7860)",
        "no-gpus": "run without `--gpus all` (CPU only)",
        "token": "API token (default: $I2VKIT_TOKEN); passed in the environment",
        "insecure": "serve without a token (the container listens beyond loopback)",
        "name": "container name",
    },
)
def run_image(
    c: Context,
    image: str,
    port: int = 7860,
    no_gpus: bool = False,
    token: str | None = None,
    insecure: bool = False,
    name: str | None = None,
) -> None:
    """Start a built image detached, with the GPUs and the service port."""
    from rich.console import Console

    from i2vkit.images import commands

    try:
        commands.run_image(image, int(port), not no_gpus, token, insecure, name, Console())
    except I2VKitError as error:
        raise Exit(f"run-image: {error}", code=2) from error


@task(help={"k": "only tests matching this expression", "x": "stop at the first failure"})
def test(c: Context, k: str = "", x: bool = False) -> None:
    """Run the test suite (the default tier: no GPU needed)."""
    args = [sys.executable, "-m", "pytest", *TEST_PATHS]
    if k:
        args += ["-k", k]
    if x:
        args.append("-x")
    c.run(shlex.join(args), pty=False)


@task
def check(c: Context) -> None:
    """Lint, format check and type check; changes nothing."""
    py = sys.executable
    c.run(f"{py} -m ruff check {' '.join(LINT_PATHS)}")
    c.run(f"{py} -m ruff format --check {' '.join(LINT_PATHS)}")
    c.run(f"{py} -m mypy")


@task
def fix(c: Context) -> None:
    """Apply ruff's fixes and formatting."""
    py = sys.executable
    c.run(f"{py} -m ruff check --fix {' '.join(LINT_PATHS)}")
    c.run(f"{py} -m ruff format {' '.join(LINT_PATHS)}")


ns = Collection(
    doctor, mirrors_task, setup, lock, generate, bench, calibrate, serve, build_image, run_image,
    test, check, fix,
)  # fmt: skip
