"""A webhook receiver for tests: a real HTTP server on 127.0.0.1 that records each request
and answers with scripted status codes (then 200)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Received:
    """One request as the receiver saw it."""

    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        """The parsed body."""
        import orjson

        return orjson.loads(self.body)


@dataclass
class Receiver:
    """Answers `script` in order (an int status; "hang", which answers 500 once released;
    or "slow", `default` after `slow_seconds`), then `default`."""

    script: list[int | str] = field(default_factory=list)
    default: int = 200
    slow_seconds: float = 0.3
    headers: dict[str, str] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    url: str = ""
    _runner: web.AppRunner | None = None
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    _release: asyncio.Event = field(default_factory=asyncio.Event)

    async def _handle(self, request: web.Request) -> web.Response:
        self.received.append(Received(request.path, dict(request.headers), await request.read()))
        self.arrived.set()
        answer = self.script.pop(0) if self.script else self.default
        if answer == "hang":
            await self._release.wait()
        elif answer == "slow":
            await asyncio.sleep(self.slow_seconds)
            answer = self.default
        assert isinstance(answer, int)
        return web.Response(status=answer, text=f"answer {answer}", headers=self.headers)

    async def wait_for(self, count: int, timeout: float = 5.0) -> None:
        """Return once `count` deliveries have arrived, or after `timeout` seconds: the
        caller asserts on what did arrive."""
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.received) < count and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)

    async def __aenter__(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/hook"
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._runner is not None
        self._release.set()
        await self._runner.cleanup()
