"""The HTTP API: an app factory; routes live in `routes/`, business logic outside the API."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

from fastapi import FastAPI

from mailer import __version__, logs
from mailer.api import errors, metrics, openapi
from mailer.api.fastpath import Api
from mailer.api.models import Health, NotReady, Ready
from mailer.api.responses import Json
from mailer.api.routes import (
    audit,
    events,
    feed,
    jobs,
    queue,
    stats,
    status,
    suppressions,
    webhooks,
)
from mailer.config import Settings, load_settings, safe_dsn
from mailer.heap import frozen_heap
from mailer.metrics import count
from mailer.metrics.exposition import process_exited
from mailer.metrics.pools import PoolSampler
from mailer.ops.activity import ACTIVITY, Summary
from mailer.ops.gauges import DatabaseGauges
from mailer.ops.outage import Outage
from mailer.ops.status import readiness
from mailer.services import Services
from mailer.tracking.credentials import ensure_event_credentials

# Something to run beside the API in the same process (the worker, in `mailer run`).
Companion = Callable[[Services], AbstractAsyncContextManager[object]]

log = logging.getLogger(__name__)

# What the API counts for its summary line (docs/operations.md).
API_COUNTERS = (
    "emails_accepted",
    "emails_replayed",
    "emails_rejected",
    "event_posts",
    "events_stored",
)


def create_app(
    settings: Settings, dsn: str, *, companion: Companion | None = None, process: str = "api"
) -> FastAPI:
    """Build the API for a database; `companion` runs alongside for the app's lifetime.

    `process` names the process in its start, stop and summary log lines.

    Raises:
        ConfigError: Mailjet keys are configured but the `/events` credentials are not.
    """
    settings = ensure_event_credentials(settings)
    count.set_enabled(settings.metrics)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = await Services.open(settings, dsn)
        app.state.services = services
        app.state.outage = Outage(services.pool)
        app.state.gauges = DatabaseGauges(services.pool)
        pool_sampler = PoolSampler(services.pool, process)
        flusher = count.Flusher()
        ACTIVITY.declare(API_COUNTERS)
        summary = Summary(process, interval=settings.log_summary_seconds)
        try:
            async with contextlib.AsyncExitStack() as stack:
                if companion is not None:
                    await stack.enter_async_context(companion(services))
                await summary.start()
                stack.push_async_callback(summary.stop)
                pool_sampler.start()
                stack.push_async_callback(pool_sampler.stop)
                flusher.start()
                stack.push_async_callback(flusher.stop)
                log.info(
                    f"{process} started",
                    extra={"action": "api_started", "pid": os.getpid()}
                    | settings.describe()
                    | {"database": safe_dsn(dsn)},
                )
                with frozen_heap():
                    yield
        finally:
            await app.state.outage.close()
            await services.close()
            process_exited()
            log.info(
                f"{process} stopped",
                extra={"action": "api_stopped", "pid": os.getpid()} | ACTIVITY.totals(),
            )

    # `Api`: FastAPI, with the enqueue routes' fast path (api/fastpath.py).
    app = Api(
        title="Mailer",
        version=__version__,
        description="Queue email for sending through Mailjet, and read back what became of it.",
        lifespan=lifespan,
        default_response_class=Json,
        docs_url=None,  # served by `openapi.install`, from vendored assets
        redoc_url=None,  # ReDoc loads its script from a CDN
    )
    errors.install(app)
    openapi.install(app)
    app.add_middleware(errors.BodySizeLimit, max_bytes=settings.max_body_bytes)
    # Outside BodySizeLimit, so that BodySizeLimit answers its own 413 first.
    app.add_middleware(errors.ErrorBoundary)
    metrics.install(app)
    for routes in (queue, status, jobs, events, feed, stats, suppressions, webhooks, audit):
        # Straight into the app's own list: `include_router` keeps each router as a nested
        # route that FastAPI matches again, layer by layer, on every request (about 20 µs
        # of POST /queue's CPU, docs/benchmarks.md). The routes carry their paths and tags.
        app.router.routes.extend(routes.router.routes)

    @app.get("/livez", tags=["health"])
    async def livez() -> Json:
        """The process answers (the database is not consulted): restart it if this fails."""
        return Json({"ok": True})

    @app.get(
        "/readyz",
        tags=["health"],
        response_model=Ready,
        responses={503: {"model": NotReady, "description": "Not ready: retry after `Retry-After`"}},
    )
    async def readyz() -> Json:
        """Ready to serve: the database answers and has every migration; 503 with the
        reason otherwise. Reports how many workers are alive (heartbeat within 30 s)."""
        ready = await readiness(app.state.services.pool)
        if ready.error is not None:
            app.state.outage.failed(ready.error)
        headers = None if ready.ready else {"Retry-After": errors.RETRY_AFTER}
        return Json(ready.body(), 200 if ready.ready else 503, headers=headers)

    @app.get("/healthz", tags=["health"], include_in_schema=False, response_model=Health)
    async def healthz() -> Json:
        """Kept for older probes: liveness and database reachability (see /readyz)."""
        await app.state.services.pool.fetchval("SELECT 1")
        return Json({"ok": True})

    return app


def app_from_env() -> FastAPI:
    """Factory for uvicorn's multi-process mode: settings and DATABASE_URL from the env."""
    settings = load_settings()
    logs.configure(settings.log_level, settings.log_format)  # each of the N processes
    if settings.database_url is None:
        raise RuntimeError("DATABASE_URL must be set for `mailer api --workers N`")
    return create_app(settings, settings.database_url)
