"""`i2vkit run-image`: start a built image with the GPUs and the service port.

The same as `docker run --gpus all -p PORT:7860 [-e I2VKIT_TOKEN=...] IMAGE [--insecure]`
(`docker_run_line` prints it). `--gpus all` needs the NVIDIA container toolkit on the host; it
mounts the driver into the container, the image brings everything else. The token goes into
the container's environment, never onto its command line.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from i2vkit.errors import ConfigError, ContainerStartError
from i2vkit.images import engine
from i2vkit.images.plan import SERVE_PORT


@dataclass(frozen=True)
class RunPlan:
    image: str
    port: int = SERVE_PORT  # on the host
    gpus: bool = True
    insecure: bool = False
    token: str | None = None
    name: str | None = None
    args: tuple[str, ...] = ()  # more flags for `i2vkit serve`

    def command(self) -> list[str]:
        return [*(["--insecure"] if self.insecure else []), *self.args]

    def check(self) -> None:
        if not self.token and not self.insecure:
            raise ConfigError(
                "the container serves beyond loopback: give an API token (--token or "
                "I2VKIT_TOKEN) or, knowingly, --insecure"
            )


def docker_run_line(plan: RunPlan) -> str:
    """The equivalent `docker run` command; the token is shown as a variable, never its value."""
    parts = ["docker", "run", "--rm", "-d"]
    if plan.gpus:
        parts += ["--gpus", "all"]
    parts += ["-p", f"{plan.port}:{SERVE_PORT}"]
    if plan.name:
        parts += ["--name", plan.name]
    line = shlex.join([*parts, plan.image, *plan.command()])
    if plan.token:
        line = line.replace(
            f" {shlex.quote(plan.image)}",
            f' -e I2VKIT_TOKEN="$I2VKIT_TOKEN" {shlex.quote(plan.image)}',
            1,
        )
    return line


def start(client: Any, plan: RunPlan, say: Callable[[str], None]) -> Any:
    """Start the container detached; returns the SDK's Container."""
    from docker.errors import APIError, ImageNotFound
    from docker.types import DeviceRequest

    plan.check()
    devices = [DeviceRequest(count=-1, capabilities=[["gpu"]])] if plan.gpus else None
    say(f"running: {docker_run_line(plan)}")
    try:
        container = client.containers.create(
            plan.image,
            plan.command(),
            name=plan.name,
            ports={f"{SERVE_PORT}/tcp": ("0.0.0.0", plan.port)},  # noqa: S104 - a service, token-guarded
            environment={"I2VKIT_TOKEN": plan.token} if plan.token else {},
            device_requests=devices,
        )
    except ImageNotFound as error:
        raise ConfigError(
            f"image {plan.image!r} is not here: build it with `i2vkit build-image` first"
        ) from error
    try:
        container.start()
    except APIError as error:
        container.remove(force=True)  # never leave a Created container behind
        hint = ""
        if plan.gpus and "gpu" in str(error).lower():
            hint = (
                "; this host has no GPU container runtime: install the NVIDIA container "
                "toolkit, or run on the CPU with --no-gpus"
            )
        raise ContainerStartError(
            f"cannot start {plan.image}: {error.explanation or error}{hint}"
        ) from error
    return container


def run_image(
    image: str,
    port: int = SERVE_PORT,
    gpus: bool = True,
    token: str | None = None,
    insecure: bool = False,
    name: str | None = None,
    say: Callable[[str], None] = lambda line: None,
    environ: Mapping[str, str] | None = None,
) -> Any:
    """Start `image` detached with the GPUs and the port; returns the container. `environ`
    locates the engine (DOCKER_HOST) and gives the token (I2VKIT_TOKEN) when none is passed."""
    environ = os.environ if environ is None else environ
    plan = RunPlan(image, port, gpus, insecure, token or environ.get("I2VKIT_TOKEN") or None, name)
    plan.check()
    return start(engine.connect(environ), plan, say)
