"""A worker's metrics: `GET /metrics` on its own port (``MAILER_METRICS_PORT``).

A worker serves no HTTP otherwise; a tiny aiohttp server on the worker's event loop answers
Prometheus with this process's metrics (one port per worker process).
"""

from __future__ import annotations

from aiohttp import web

from mailer.metrics.exposition import CONTENT_TYPE, render


async def _metrics(_request: web.Request) -> web.Response:
    return web.Response(body=render(), headers={"Content-Type": CONTENT_TYPE})


class MetricsServer:
    """Serves `GET /metrics` on `host:port` between `start` and `stop`."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        app = web.Application()
        app.router.add_get("/metrics", _metrics)
        self._runner = web.AppRunner(app, access_log=None)

    async def start(self) -> int:
        """Listen; return the port bound (the one asked for, or a free one for 0).

        Raises:
            OSError: the address cannot be listened on.
        """
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        try:
            await site.start()
        except OSError:
            await self._runner.cleanup()
            raise
        for address in self._runner.addresses:
            self.port = address[1]
        return self.port

    async def stop(self) -> None:
        """Stop listening."""
        await self._runner.cleanup()
