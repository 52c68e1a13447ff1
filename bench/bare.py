"""Baselines served over HTTP: the same framework without the database, and a canned server.

    python -m bench.bare queue  --port P --workers 2   # FastAPI: parse EmailRequest, 202
    python -m bench.bare queue_lean --port P --workers 2   # the same, read as Mailer reads it
    python -m bench.bare events --port P --workers 2   # FastAPI: read and parse the JSON, 200
    python -m bench.bare canned --port P               # raw asyncio: a fixed 202, no parsing
    python -m bench.bare receiver --port P             # a webhook receiver: 200 at once

`queue` and `events` run exactly like `mailer api` (uvicorn, httptools, uvloop, the same
worker count, the same orjson responses, the same start-up heap freeze), so the ratio to
them isolates what Mailer adds.
`queue_lean` reads the body as Mailer's enqueue routes do (`EnqueuingRoute`: pydantic's
`model_validate_json`, without FastAPI's handler): the ratio to it is what the database
path costs, apart from how the body is read.
`canned` answers as cheaply as Python can: it shows the load generator's ceiling.
`receiver` is the webhooks scenario's endpoint, as cheap: 200 to every POST, counting the
POSTs and their distinct `webhook-id`s (`GET /_stats`), so the scenario checks each
delivery arrived once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, cast

import orjson
from fastapi import FastAPI, Request, Response
from fastapi.routing import APIRoute

from mailer.api.deps import json_body
from mailer.api.responses import Json
from mailer.delivery.email import EmailRequest
from mailer.heap import freeze_startup_heap
from mailer.ids import uuid7


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    freeze_startup_heap()  # as Mailer's API does once started
    yield


def queue_app() -> FastAPI:
    """`POST /queue` with the same body model as Mailer's, answering 202 at once."""
    app = FastAPI(default_response_class=Json, lifespan=_lifespan)

    @app.post("/queue", status_code=202)
    async def queue(email: EmailRequest) -> Json:
        return Json({"job_id": str(uuid7()), "status": "queued"}, 202)

    @app.get("/healthz")
    async def healthz() -> Json:
        return Json({"ok": True})

    return app


class _LeanRoute(APIRoute):
    """Mailer's `EnqueuingRoute` without the caller and the database."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """Read the body as Mailer does, then call the endpoint with it."""
        endpoint = self.endpoint

        async def handle(request: Request) -> Response:
            email = json_body(
                EmailRequest, request.headers.get("content-type"), await request.body()
            )
            response: Response = await endpoint(email)
            return response

        return handle


def queue_lean_app() -> FastAPI:
    """`POST /queue` answering 202 once the body is read and validated as Mailer reads it."""
    app = FastAPI(default_response_class=Json, lifespan=_lifespan)

    async def queue(email: EmailRequest) -> Json:
        return Json({"job_id": str(uuid7()), "status": "queued"}, 202)

    app.router.add_api_route(
        "/queue", queue, methods=["POST"], status_code=202, route_class_override=_LeanRoute
    )

    @app.get("/healthz")
    async def healthz() -> Json:
        return Json({"ok": True})

    return app


def events_app() -> FastAPI:
    """`POST /events` that reads and parses the body (an array of events), answering 200."""
    app = FastAPI(default_response_class=Json, lifespan=_lifespan)

    @app.post("/events")
    async def events(request: Request) -> Json:
        data: Any = orjson.loads(await request.body())
        return Json({"received": len(data) if isinstance(data, list) else 1})

    @app.get("/healthz")
    async def healthz() -> Json:
        return Json({"ok": True})

    return app


_CANNED_BODY = b'{"job_id":"00000000-0000-0000-0000-000000000000","status":"queued"}'
_CANNED = (
    b"HTTP/1.1 202 Accepted\r\ncontent-type: application/json\r\n"
    + f"content-length: {len(_CANNED_BODY)}\r\n\r\n".encode()
    + _CANNED_BODY
)


class _Canned(asyncio.Protocol):
    """Answers every complete request (headers + Content-Length body) with a fixed 202."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while True:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self._buffer[:end]).lower()
            at = head.find(b"\r\ncontent-length:")
            length = 0
            if at >= 0:
                stop = head.find(b"\r\n", at + 2)
                length = int(head[at + 17 : stop if stop >= 0 else len(head)])
            if len(self._buffer) < end + 4 + length:
                return
            del self._buffer[: end + 4 + length]
            self._answer(head)

    def _answer(self, head: bytes) -> None:
        if head.startswith(b"get /healthz"):
            self._write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        else:
            self._write(_CANNED)

    def _write(self, data: bytes) -> None:
        if self._transport is not None:
            self._transport.write(data)


_RECEIVED = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"


class _Receiver(_Canned):
    """A webhook receiver answering 200 at once; counts POSTs and distinct webhook-ids."""

    posts = 0
    ids: set[bytes] = set()  # class-wide: every connection of this one receiver counts here

    def _answer(self, head: bytes) -> None:
        if head.startswith(b"get /_stats"):
            body = orjson.dumps({"posts": _Receiver.posts, "distinct": len(_Receiver.ids)})
            self._write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                + f"content-length: {len(body)}\r\n\r\n".encode()
                + body
            )
            return
        if head.startswith(b"get /healthz"):
            super()._answer(head)
            return
        _Receiver.posts += 1
        at = head.find(b"\r\nwebhook-id:")
        if at >= 0:
            stop = head.find(b"\r\n", at + 2)
            _Receiver.ids.add(head[at + 13 : stop if stop >= 0 else len(head)].strip())
        self._write(_RECEIVED)


async def _serve_canned(port: int, protocol: type[_Canned] = _Canned) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(protocol, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def main() -> None:
    """Serve one of the baselines until terminated."""
    parser = argparse.ArgumentParser(prog="python -m bench.bare")
    parser.add_argument("kind", choices=["queue", "queue_lean", "events", "canned", "receiver"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if args.kind in ("canned", "receiver"):
        import uvloop

        uvloop.run(_serve_canned(args.port, _Receiver if args.kind == "receiver" else _Canned))
        return
    import uvicorn

    uvicorn.run(
        f"bench.bare:{args.kind}_app",
        factory=True,
        host="127.0.0.1",
        port=args.port,
        workers=args.workers,
        log_level="warning",
        access_log=False,
        http="httptools",
        loop="uvloop",
    )


if __name__ == "__main__":
    main()
