"""`GET /metrics` (Prometheus text format) and the count of every HTTP request.

Requests are counted by route template (`/status/{job_id}`, never the raw path), method and
status, outside every other middleware so that the answers they give (413, a bare 500)
are counted too. `/metrics` itself is not authenticated: serve it to Prometheus only
(docs/operations.md says how to keep it off the public side).
"""

from __future__ import annotations

import time

from fastapi import FastAPI, Request, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mailer.api.errors import ApiError
from mailer.metrics import count
from mailer.metrics.exposition import CONTENT_TYPE, render
from mailer.ops.gauges import DatabaseGauges

UNMATCHED = "unmatched"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RequestMetrics:
    """ASGI middleware: counts each HTTP request and times it (nothing with metrics off)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not count.enabled():
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # unless an answer starts: the connection broke, or nothing answered

        async def send_counted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_counted)
        finally:
            route = getattr(scope.get("route"), "path", None) or UNMATCHED
            method = scope["method"] if scope["method"] in _METHODS else "other"
            count.http_request(route, method, status, time.perf_counter() - started)


def install(app: FastAPI) -> None:
    """Add `GET /metrics` (404 with metrics off) and the request counting."""

    @app.get("/metrics", tags=["health"], include_in_schema=False)
    async def metrics(request: Request) -> Response:
        """Every Mailer metric in Prometheus text format (docs/operations.md, "Metrics")."""
        if not count.enabled():
            raise ApiError(404, "not_found", "metrics are off here (MAILER_METRICS=off)")
        gauges: DatabaseGauges = request.app.state.gauges
        await gauges.refresh()
        return Response(render([gauges]), headers={"Content-Type": CONTENT_TYPE})

    app.add_middleware(RequestMetrics)
