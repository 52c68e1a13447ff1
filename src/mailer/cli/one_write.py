"""uvicorn's httptools protocol for `mailer api` and `mailer run`, writing each small
response in one piece (httptools ships with `uvicorn[standard]`, which Mailer requires)."""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

__all__ = ["OneWriteHttpTools"]


class _HeadHolder:
    """A response's transport that holds the status line and headers back until the body
    is written, and writes them together: one `send()` (one TCP segment, one wake-up of
    the client) per small response instead of two. Everything else is the transport's."""

    __slots__ = ("_held", "_transport", "hold")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._held: bytes | None = None
        self.hold = False

    def write(self, data: bytes) -> None:
        """Write `data`, after the held head; held itself while `hold` is set."""
        if self.hold:
            self.hold = False
            self._held = data
            return
        held = self._held
        if held is not None:
            self._held = None
            data = held + data
        self._transport.write(data)

    def flush(self) -> None:
        """Write a head that no body write took (a HEAD request, a response of no body)."""
        held = self._held
        if held is not None:
            self._held = None
            if not self._transport.is_closing():
                self._transport.write(held)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _OneWriteCycle(RequestResponseCycle):
    """uvicorn's request/response cycle, writing its head with the first body write."""

    async def send(self, message: Any) -> None:
        """Send an ASGI message as uvicorn does; the head goes out with the body."""
        holder = self.transport
        if not isinstance(holder, _HeadHolder):  # pragma: no cover - set on creation
            await super().send(message)
            return
        if message["type"] == "http.response.start" and not self.response_started:
            holder.hold = True  # uvicorn writes the head in this call: held
            try:
                await super().send(message)
            finally:
                holder.hold = False
            return
        try:
            await super().send(message)
        finally:
            holder.flush()


class OneWriteHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol, answering each small response in one write.

    uvicorn writes a response's status line and headers as soon as the app starts it, and
    the body when it comes: two writes, so two TCP segments for every small JSON answer,
    each a `send()` and a wake-up of the client (about 4 µs of the API's CPU and 4 µs of
    its client's per `POST /queue`, measured on 2 cores). What is written, and when the
    response is complete, is unchanged; only the head waits for the body's first write
    (or for the body message, if it writes nothing)."""

    def on_headers_complete(self) -> None:
        """Start the request's cycle, as uvicorn does, as a one-write cycle."""
        super().on_headers_complete()
        cycle = self.cycle
        if type(cycle) is RequestResponseCycle and not isinstance(cycle.transport, _HeadHolder):
            cycle.__class__ = _OneWriteCycle
            cycle.transport = _HeadHolder(cycle.transport)  # type: ignore[assignment]
