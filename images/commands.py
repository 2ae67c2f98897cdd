"""What `invoke build-image` and `invoke run-image` do: plan, print the plan, then act.

`build_image` prints the whole plan first (base, build args with every mirror URL, stages,
files baked in, expected size) and stops there with `dry_run`, before any engine or network is
touched. Errors are i2vkit's own (engine unreachable, build failed at a step); tasks.py turns
them into exit messages.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from i2vkit.images import build as builder
from i2vkit.images import engine
from i2vkit.images import run as runner
from i2vkit.images.plan import DEFAULT_BASE, BuildPlan, make_plan
from i2vkit.images.secrets import find_token
from i2vkit.settings import Settings


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


def build_image(
    settings: Settings,
    model: str,
    mirror: str,
    cuda: str = "auto",
    tag: str | None = None,
    push: bool = False,
    dry_run: bool = False,
    no_weights: bool = False,
    base: str = DEFAULT_BASE,
    custom_mirrors: Mapping[str, Any] | None = None,
    as_json: bool = False,
    console: Any = None,
    environ: Mapping[str, str] | None = None,
) -> builder.Summary | None:
    """Plan, print, and (unless `dry_run`) build through the Docker Engine API."""
    environ = os.environ if environ is None else environ
    say = _printer(console)
    found = find_token(environ)
    plan = make_plan(
        settings,
        model,
        mirror,
        cuda,
        tag,
        base,
        push,
        no_weights,
        custom_mirrors,
        token_source=found[1] if found else None,
    )
    if as_json:
        print(json.dumps(plan.to_dict(), indent=2))
    else:
        for line in plan_lines(plan):
            say(line)
    if dry_run:
        if not as_json:
            say("dry run: nothing was built")
        return None
    client = engine.connect(environ)
    say(f"building {plan.tag} with the engine at {engine.where(environ)[0]}")
    summary = builder.build(client, plan, say, token=found[0] if found else None)
    say(f"expected about {_gb(plan.expected_bytes)}; built:")
    for line in summary.lines():
        say(line)
    return summary


def run_image(
    image: str,
    port: int = runner.SERVE_PORT,
    gpus: bool = True,
    token: str | None = None,
    insecure: bool = False,
    name: str | None = None,
    console: Any = None,
    environ: Mapping[str, str] | None = None,
) -> Any:
    """Start `image` detached with the GPUs and the port; returns the container."""
    environ = os.environ if environ is None else environ
    say = _printer(console)
    plan = runner.RunPlan(
        image, port, gpus, insecure, token or environ.get("I2VKIT_TOKEN") or None, name
    )
    plan.check()
    container = runner.start(engine.connect(environ), plan, say)
    say(
        f"started {container.short_id}: http://127.0.0.1:{port}/ (ready when /readyz is 200; "
        f"logs: docker logs -f {container.short_id})"
    )
    return container


def _printer(console: Any) -> builder.Say:
    if console is None:
        return lambda line: print(line, flush=True)
    return lambda line: console.print(line, markup=False, highlight=False, soft_wrap=True)
