"""uvicorn's HTTP/1.1 protocol with a deadline for a request's headers.

uvicorn arms no timer until a first response, and each byte received cancels its keep-alive
timer: a client that sends half a request line holds its connection (and a file descriptor)
forever; 300 such clients stayed open in the hostile pass. uvicorn has no setting for it, so
this subclass closes a connection whose request headers are not complete within HEADERS_SECONDS
of its opening or of the previous response. Bodies are timed by guard.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

HEADERS_SECONDS = 10.0


class Protocol(H11Protocol):
    _headers_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._arm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._headers_timer is not None:
            self._headers_timer.cancel()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._headers_timer is not None:
            self._headers_timer.cancel()
        self._headers_timer = self.loop.call_later(HEADERS_SECONDS, self._late)

    def _late(self) -> None:
        """Still waiting for (the rest of) a request's headers: close."""
        self._headers_timer = None
        waiting = self.conn.their_state is h11.IDLE
        between = self.cycle is None or self.cycle.response_complete
        if waiting and between and not self.transport.is_closing():
            self.transport.close()
