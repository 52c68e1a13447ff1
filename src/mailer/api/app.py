"""The HTTP API: an app factory; routes live in `routes/`, business logic outside the API."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

from fastapi import FastAPI

from mailer import __version__
from mailer.api import errors, openapi
from mailer.api.models import Health
from mailer.api.responses import Json
from mailer.api.routes import events, feed, queue, status, suppressions, webhooks
from mailer.config import Settings, load_settings
from mailer.heap import frozen_heap
from mailer.services import Services
from mailer.tracking.credentials import ensure_event_credentials

# Something to run beside the API in the same process (the worker, in `mailer run`).
Companion = Callable[[Services], AbstractAsyncContextManager[object]]


def create_app(settings: Settings, dsn: str, *, companion: Companion | None = None) -> FastAPI:
    """Build the API for a database; `companion` runs alongside for the app's lifetime.

    Raises:
        ConfigError: Mailjet keys are configured but the `/events` credentials are not.
    """
    settings = ensure_event_credentials(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = await Services.open(settings, dsn)
        app.state.services = services
        try:
            async with contextlib.AsyncExitStack() as stack:
                if companion is not None:
                    await stack.enter_async_context(companion(services))
                with frozen_heap():
                    yield
        finally:
            await services.close()

    app = FastAPI(
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
    for routes in (queue, status, events, feed, suppressions, webhooks):
        # Straight into the app's own list: `include_router` keeps each router as a nested
        # route that FastAPI matches again, layer by layer, on every request (about 20 µs
        # of POST /queue's CPU, docs/benchmarks.md). The routes carry their paths and tags.
        app.router.routes.extend(routes.router.routes)

    @app.get("/healthz", tags=["health"], response_model=Health)
    async def healthz() -> Json:
        """Liveness and database reachability."""
        await app.state.services.pool.fetchval("SELECT 1")
        return Json({"ok": True})

    return app


def app_from_env() -> FastAPI:
    """Factory for uvicorn's multi-process mode: settings and DATABASE_URL from the env."""
    settings = load_settings()
    if settings.database_url is None:
        raise RuntimeError("DATABASE_URL must be set for `mailer api --workers N`")
    return create_app(settings, settings.database_url)
