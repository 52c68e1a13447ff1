"""`OneWriteHttpTools` writes the bytes uvicorn's own protocol writes, in fewer writes: a
small response's head goes out with its body, in one write."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from mailer.cli.one_write import OneWriteHttpTools


class FakeTransport(asyncio.Transport):
    """Records what is written; a loopback peer, never paused."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def app(scope: Any, receive: Any, send: Any) -> None:
    """Answers by path: a JSON body, a streamed body, or a body of nothing."""
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    path = scope["path"]
    if path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for part in (b"one", b"two", b""):
            await send({"type": "http.response.body", "body": part, "more_body": part != b""})
        return
    body = b"" if path == "/empty" else b'{"job_id":"x","status":"queued"}'
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 202, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def served(protocol_class: type[HttpToolsProtocol], request: bytes) -> FakeTransport:
    config = uvicorn.Config(app, http=protocol_class, lifespan="off", access_log=False)
    config.load()
    state = ServerState()
    protocol = protocol_class(config=config, server_state=state, app_state={})
    transport = FakeTransport()
    protocol.connection_made(transport)
    protocol.data_received(request)
    for _ in range(100):
        await asyncio.sleep(0)
        if not state.tasks and not protocol.pipeline:
            break
    await asyncio.sleep(0)
    return transport


POST = b"POST /queue HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n{}"


@pytest.mark.parametrize(
    ("request_bytes", "writes"),
    [
        (POST, (2, 1)),
        (POST.replace(b"/queue", b"/empty"), (2, 1)),
        # No body is written for HEAD: the head alone, as before.
        (b"HEAD /queue HTTP/1.1\r\nHost: a\r\n\r\n", (1, 1)),
        (POST.replace(b"Host: a", b"Host: a\r\nConnection: close"), (2, 1)),
        # A streamed body: the head goes with its first part.
        (b"GET /stream HTTP/1.1\r\nHost: a\r\n\r\n", (4, 3)),
        # Two pipelined requests: one write each.
        (POST + POST, (4, 2)),
    ],
)
async def test_the_same_bytes_in_fewer_writes(
    request_bytes: bytes, writes: tuple[int, int]
) -> None:
    usual = await served(HttpToolsProtocol, request_bytes)
    one = await served(OneWriteHttpTools, request_bytes)
    assert b"".join(one.writes) == b"".join(usual.writes)
    assert b"".join(usual.writes).startswith(b"HTTP/1.1 ")
    assert (len(usual.writes), len(one.writes)) == writes
    assert one.closed == usual.closed
