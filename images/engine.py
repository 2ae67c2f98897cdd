"""Finding the Docker engine: the Python SDK over DOCKER_HOST or the default socket.

Nothing here runs at import; `connect` is the one place a client is made, and it pings the
engine so that a missing daemon is reported before any work, with where the client looked.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from i2vkit.errors import EngineUnreachableError

DEFAULT_SOCKET = "unix:///var/run/docker.sock"


def where(environ: Mapping[str, str]) -> tuple[str, str]:
    """(address, how it was chosen) as the SDK will use it."""
    host = environ.get("DOCKER_HOST")
    if host:
        return host, "from DOCKER_HOST"
    return DEFAULT_SOCKET, "the default socket; DOCKER_HOST is not set"


def connect(environ: Mapping[str, str] | None = None, timeout: float = 600) -> Any:
    """A pinged `docker.DockerClient`, or EngineUnreachableError naming where it looked."""
    import docker
    from docker.errors import DockerException

    environ = os.environ if environ is None else environ
    address, how = where(environ)
    try:
        client = docker.from_env(environment=dict(environ), timeout=int(timeout))
        client.ping()
    except DockerException as error:
        raise EngineUnreachableError(address, how, _short(error)) from error
    except OSError as error:  # a socket path that exists but is not a daemon
        raise EngineUnreachableError(address, how, _short(error)) from error
    return client


def _short(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text[:300]
