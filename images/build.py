"""Acting on a BuildPlan: build through the Docker Engine API, stream the output as progress,
summarise (size, time, which steps came from the cache), push.

The engine's builder is the classic one (the Python SDK speaks only that): steps arrive as
"Step N/M : INSTRUCTION" lines, each followed by " ---> Using cache" when it was cached. That
is what the summary counts, per stage.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

from i2vkit.errors import BuildError, PushError
from i2vkit.images import engine
from i2vkit.images.plan import DEFAULT_BASE, BuildPlan, make_plan
from i2vkit.images.secrets import TokenServer, find_token
from i2vkit.settings import Settings

Say = Callable[[str], None]
_STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)$")
_IMAGE = re.compile(r"^\s*---> ([0-9a-f]{12,64})$")
_FROM = re.compile(r"^FROM\s+\S+(?:\s+AS\s+(\S+))?", re.IGNORECASE)


@dataclass
class Step:
    number: int
    text: str
    stage: str
    cached: bool = False
    seconds: float = 0.0
    image: str | None = None  # the image the step committed (classic builder: " ---> id")


@dataclass
class BuildStream:
    """Reads the engine's JSON stream; keeps the steps and hands output lines to `say`."""

    say: Say
    steps: list[Step] = field(default_factory=list)
    total: int = 0
    image_id: str | None = None
    _stage: str = "args"
    _stages: int = 0
    _started: float = field(default_factory=time.perf_counter)

    def feed(self, item: Mapping[str, Any]) -> None:
        if "error" in item or "errorDetail" in item:
            detail = item.get("errorDetail") or {}
            message = str(detail.get("message") or item.get("error") or "unknown error").strip()
            # the classic builder repeats the whole RUN line; the step is named already
            message = re.sub(
                r"^The command '.*' returned", "the step returned", message, flags=re.S
            )
            step = self.steps[-1] if self.steps else None
            where = f"[{step.stage}] step {step.number}: {step.text[:100]}" if step else None
            raise BuildError(message, where)
        aux = item.get("aux")
        if isinstance(aux, Mapping) and aux.get("ID"):
            self.image_id = str(aux["ID"])
        text = item.get("stream") or item.get("status") or ""
        for line in str(text).splitlines():
            self._line(line.rstrip())

    def _line(self, line: str) -> None:
        match = _STEP.match(line)
        if match:
            self._close()
            number, self.total, instruction = int(match[1]), int(match[2]), match[3]
            start = _FROM.match(instruction)
            if start:
                self._stage = start[1] or str(self._stages)
                self._stages += 1
            self.steps.append(Step(number, instruction, self._stage))
            self.say(f"[{self._stage}] step {number}/{self.total}: {instruction}")
            return
        if line.strip() == "---> Using cache" and self.steps:
            self.steps[-1].cached = True
            self.say("    (cached)")
            return
        image = _IMAGE.match(line)
        if image and self.steps:
            self.steps[-1].image = image[1]
        if line.strip().startswith("--->") or not line.strip():
            return  # intermediate image ids: noise for people
        self.say(f"    {line}")

    def _close(self) -> None:
        now = time.perf_counter()
        if self.steps:
            self.steps[-1].seconds = now - self._started
        self._started = now

    def finish(self) -> None:
        self._close()


@dataclass(frozen=True)
class Summary:
    tag: str
    image_id: str
    size_bytes: int
    seconds: float
    steps: tuple[Step, ...]
    pushed: bool = False

    @property
    def counted(self) -> list[Step]:
        """Every step but FROM and the global ARGs before it: the builder reports neither as
        cached, they make no layer."""
        return [s for s in self.steps if not _FROM.match(s.text) and s.stage != "args"]

    @property
    def cached(self) -> int:
        return sum(s.cached for s in self.counted)

    def by_stage(self) -> dict[str, tuple[int, int]]:
        """stage -> (cached steps, steps), FROM not counted."""
        out: dict[str, tuple[int, int]] = {}
        for step in self.counted:
            cached, total = out.get(step.stage, (0, 0))
            out[step.stage] = (cached + step.cached, total + 1)
        return out

    def lines(self) -> list[str]:
        stages = ", ".join(f"{name} {c}/{t}" for name, (c, t) in self.by_stage().items())
        rebuilt = [s for s in self.counted if not s.cached]
        slowest = sorted(rebuilt, key=lambda s: s.seconds, reverse=True)[:3]
        lines = [
            f"image    {self.tag} ({self.image_id[:19]})",
            f"size     {self.size_bytes / 1e9:.2f} GB",
            f"time     {self.seconds:.1f} s",
            f"cached   {self.cached}/{len(self.counted)} steps (per stage, cached/all: {stages})",
        ]
        lines += [f"  ran    {s.seconds:6.1f} s  [{s.stage}] {s.text[:90]}" for s in slowest]
        if self.pushed:
            lines.append(f"pushed   {self.tag}")
        return lines


def build(
    client: Any, plan: BuildPlan, say: Say, token: str | None = None, nocache: bool = False
) -> Summary:
    """Build `plan` with the engine behind `client`; the token (if any) is served once over
    loopback to the weights step (images/secrets.py), never passed as a build arg."""
    started = time.perf_counter()
    args = dict(plan.build_args)
    network = plan.network_mode
    progress = BuildStream(say)
    with ExitStack() as stack:
        if token:
            server = stack.enter_context(TokenServer(token))
            args["HF_TOKEN_URL"] = server.url
            network = "host"
        stream: Iterable[Mapping[str, Any]] = client.api.build(
            path=plan.context,
            dockerfile=plan.dockerfile,
            tag=plan.tag,
            buildargs=args,
            network_mode=network,
            rm=True,
            forcerm=True,
            pull=False,
            decode=True,
            nocache=nocache,
        )
        for item in stream:
            progress.feed(item)
    progress.finish()
    image = client.images.get(plan.tag)
    summary = Summary(
        plan.tag,
        image.id,
        int(image.attrs.get("Size", 0)),
        time.perf_counter() - started,
        tuple(progress.steps),
    )
    if plan.push:
        push(client, plan.tag, say)
        summary = Summary(
            summary.tag,
            summary.image_id,
            summary.size_bytes,
            summary.seconds,
            summary.steps,
            pushed=True,
        )
    return summary


def push(client: Any, tag: str, say: Say) -> None:
    repository, _, version = tag.rpartition(":") if ":" in tag.split("/")[-1] else (tag, "", "")
    for item in client.api.push(repository, tag=version or None, stream=True, decode=True):
        if "error" in item or "errorDetail" in item:
            message = (item.get("errorDetail") or {}).get("message") or item.get("error")
            raise PushError(f"pushing {tag} failed: {message}; log in with `docker login` first")
        if item.get("status") and not item.get("progressDetail"):
            say(f"    push: {item['status']} {item.get('id', '')}".rstrip())


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
    show: Callable[[BuildPlan], None] = lambda plan: None,
    say: Say = lambda line: None,
    environ: Mapping[str, str] | None = None,
    cluster: bool = False,
) -> Summary | None:
    """Plan, `show` the plan, and (unless `dry_run`) build it through the Docker Engine API,
    streaming the build's output to `say`. `environ` locates the engine (DOCKER_HOST)."""
    environ = os.environ if environ is None else environ
    found = find_token()
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
        cluster=cluster,
    )
    show(plan)
    if dry_run:
        return None
    client = engine.connect(environ)
    say(f"building {plan.tag} with the engine at {engine.where(environ)[0]}")
    return build(client, plan, say, token=found[0] if found else None)
