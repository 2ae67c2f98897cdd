"""`i2vkit serve`: check the binding, take the port and the job store, build the app, run
uvicorn; exit non-zero when the model fails to load (unless told to stay up as FAILED)."""

from __future__ import annotations

import logging
import socket
import sys

from i2vkit.errors import PortBusyError
from i2vkit.runtime.server.service import ServeConfig, Service, check_binding


def listen(host: str, port: int) -> socket.socket:
    """The server's listening socket, bound before anything loads: a taken port is a clear
    error naming --port (uvicorn would log Errno 98 and exit 3 after the model loaded), and
    nothing can take the port between this check and uvicorn's start."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    # as uvicorn's own bind: a port left in TIME_WAIT by a previous server is free to reuse; a
    # port another process listens on still fails
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as error:
        sock.close()
        raise PortBusyError(host, port, error.strerror or str(error)) from error
    sock.set_inheritable(True)
    return sock


def serve(config: ServeConfig) -> int:
    import uvicorn

    from i2vkit.runtime.server.http import create_app
    from i2vkit.runtime.server.protocol import Protocol

    check_binding(config.host, config.token, config.insecure)
    sock = listen(config.host, config.port)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )  # fmt: skip
    try:
        service = Service.create(config)  # takes the job store, or says who holds it
    except BaseException:
        sock.close()
        raise
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(config, service), host=config.host, port=config.port,
            log_level="info", access_log=False, timeout_graceful_shutdown=5,
            http=Protocol,  # uvicorn's h11 with a deadline for request headers
        )
    )  # fmt: skip

    def exit_on_failure() -> None:
        server.should_exit = True

    service.on_failure = exit_on_failure
    server.run(sockets=[sock])
    if service.state == "FAILED":
        logging.getLogger("i2vkit.server").error("exiting: %s", service.reason)
        return 1
    return 0
