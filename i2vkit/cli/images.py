"""`build-image` and `run-image`: the service image with the locked env and baked weights,
built through the Docker Engine API after its whole plan is printed; started with the GPUs."""

from __future__ import annotations

import json
from typing import Any

from invoke import Context

from i2vkit.cli.base import command, mirrors_config, settings
from i2vkit.images.build import build_image as build
from i2vkit.images.plan import DEFAULT_BASE, BuildPlan
from i2vkit.images.run import SERVE_PORT
from i2vkit.images.run import run_image as run


@command(
    name="build-image",
    help={
        "mirror": "tuna, aliyun, ustc, sjtu, default, a custom mirror, or auto (probe)",
        "model": "model baked into the image (default: settings' model)",
        "cuda": "torch wheel variant: auto (from `i2vkit doctor`), cpu, cu126, cu129, cu130, cu132",
        "tag": "image tag (default: i2vkit/<model>:<torch>-<variant>)",
        "push": "push the tag after the build (log in with `docker login` first)",
        "dry-run": "print the plan (base, build args, stages, files, size); no engine, no network",
        "no-weights": "bake no weights (mount an HF cache at run time)",
        "base": "base image (default: debian:bookworm-slim; the host's driver comes from --gpus)",
        "json": "print the plan as JSON",
        "cluster": "with Ray (env/requirements/cluster.txt): the image can also join a Ray "
        "cluster as a worker node (docs/scaling.md)",
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
    cluster: bool = False,
) -> None:
    """Build the service image: the locked env, baked weights, `i2vkit serve`."""
    app = settings(c, model=model, mirror=mirror)
    say = _printer()
    summary = build(
        app, app.model, app.mirror, cuda, tag, push, dry_run, no_weights, base or DEFAULT_BASE,
        mirrors_config(c), show=_show_json if json else lambda plan: _show(plan, say), say=say,
        cluster=cluster,
    )  # fmt: skip
    if summary is None:
        if not json:
            say("dry run: nothing was built")
        return
    for line in summary.lines():
        say(line)


@command(
    name="run-image",
    help={
        "image": "the image tag (as `i2vkit build-image` printed it)",
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
    port: int = SERVE_PORT,
    no_gpus: bool = False,
    token: str | None = None,
    insecure: bool = False,
    name: str | None = None,
) -> None:
    """Start a built image detached, with the GPUs and the service port."""
    say = _printer()
    container = run(image, int(port), not no_gpus, token, insecure, name, say=say)
    say(
        f"started {container.short_id}: http://127.0.0.1:{port}/ (ready when /readyz is 200; "
        f"logs: docker logs -f {container.short_id})"
    )


def _show(plan: BuildPlan, say: Any) -> None:
    for line in plan_lines(plan):
        say(line)


def _show_json(plan: BuildPlan) -> None:
    print(json.dumps(plan.to_dict(), indent=2))


def _gb(n: int) -> str:
    if n >= 1e8:
        return f"{n / 1e9:.2f} GB"
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


def plan_lines(plan: BuildPlan) -> list[str]:
    """The plan for people: every value that decides what is built."""
    lines = [
        f"image       {plan.tag}{'  (pushed after the build)' if plan.push else ''}",
        f"base        {plan.base}",
        f"model       {plan.model}",
        f"torch       {plan.variant} ({plan.variant_reason})",
        f"mirror      {plan.mirror}",
        f"network     {plan.network_mode or 'default'} (build steps)",
        f"HF token    {plan.token_source or 'none found (public models only)'}",
        f"dockerfile  {plan.dockerfile} (context {plan.context})",
        "build args",
    ]
    for key, value in plan.build_args.items():
        first, *rest = (value or '""').splitlines() or ['""']
        lines.append(f"  {key} = {first}")
        lines += [f"  {' ' * len(key)}   {more}" for more in rest]
    lines.append("stages")
    lines += [f"  {i}. {stage.name:8} {stage.does}" for i, stage in enumerate(plan.stages, 1)]
    lines.append("files baked in")
    lines += [f"  {_gb(b.bytes):>9}  {b.path}  ({b.what})" for b in plan.baked]
    lines.append("labels")
    lines += [f"  {key} = {value}" for key, value in plan.labels.items()]
    lines.append(
        f"expected size  about {_gb(plan.expected_bytes)} "
        f"(base {_gb(plan.sizes.get('base', 0))} + the files above)"
    )
    lines += [f"note: {note}" for note in plan.notes]
    return lines


def _printer() -> Any:
    from rich.console import Console

    console = Console()
    return lambda line: console.print(line, markup=False, highlight=False, soft_wrap=True)
