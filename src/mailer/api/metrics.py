"""`GET /metrics` (Prometheus text format).

Every HTTP answer is counted by `errors.ErrorBoundary`, the outermost middleware, which
sees every answer anyway. `/metrics` itself is not authenticated: serve it to Prometheus
only (docs/operations.md says how to keep it off the public side).
"""

from __future__ import annotations

from fastapi import FastAPI, Request, Response

from mailer.api.errors import ApiError
from mailer.metrics import count
from mailer.metrics.exposition import CONTENT_TYPE, render
from mailer.ops.gauges import DatabaseGauges


def install(app: FastAPI) -> None:
    """Add `GET /metrics` (404 with metrics off)."""

    @app.get("/metrics", tags=["health"], include_in_schema=False)
    async def metrics(request: Request) -> Response:
        """Every Mailer metric in Prometheus text format (docs/operations.md, "Metrics")."""
        if not count.enabled():
            raise ApiError(404, "not_found", "metrics are off here (MAILER_METRICS=off)")
        gauges: DatabaseGauges = request.app.state.gauges
        await gauges.refresh()
        return Response(render([gauges]), headers={"Content-Type": CONTENT_TYPE})
