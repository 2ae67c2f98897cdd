"""`invoke serve`: check the binding, build the app, run uvicorn; exit non-zero when the model
fails to load (unless told to stay up as FAILED)."""

from __future__ import annotations

import logging
import sys

from runtime.service import ServeConfig, Service, check_binding


def main(config: ServeConfig) -> int:
    import uvicorn

    from runtime.server import create_app

    check_binding(config.host, config.token, config.insecure)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )  # fmt: skip
    service = Service.create(config)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(config, service), host=config.host, port=config.port,
            log_level="info", access_log=False, timeout_graceful_shutdown=5,
        )
    )  # fmt: skip

    def exit_on_failure() -> None:
        server.should_exit = True

    service.on_failure = exit_on_failure
    server.run()
    if service.state == "FAILED":
        logging.getLogger("i2vkit.server").error("exiting: %s", service.reason)
        return 1
    return 0
