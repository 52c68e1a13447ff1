"""The operator dashboard at `/dashboard`: server-rendered pages for the people who run
Mailer (issue 17). `install(app)` adds it to an API app; `mailer api` and `mailer run` do.

It sits at the api layer: it uses the parts below (delivery, tracking, ops) and nothing
below imports it.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

from mailer.dashboard import erase, login, routes, web, webhook_routes
from mailer.dashboard.callbacks import CallbackCheck
from mailer.dashboard.web import DashboardConfig

__all__ = ["DashboardConfig", "install"]


def install(app: FastAPI, config: DashboardConfig | None = None) -> None:
    """Serve the dashboard from `app` (which must set `app.state.services`)."""
    app.state.dashboard = config or DashboardConfig()
    app.state.dashboard_callbacks = CallbackCheck()
    app.router.routes.extend(login.router.routes)
    app.router.routes.extend(routes.router.routes)
    app.router.routes.extend(webhook_routes.router.routes)
    app.router.routes.extend(erase.router.routes)
    app.mount(f"{web.BASE}/static", StaticFiles(directory=web.STATIC_DIR), name="dashboard")

    @app.exception_handler(web.LoginRequired)
    async def to_login(request: Request, exc: web.LoginRequired) -> Response:
        return web.login_redirect(exc.next_path)

    @app.exception_handler(web.NotAllowed)
    async def not_allowed(request: Request, exc: web.NotAllowed) -> Response:
        return web.not_allowed_page(request, exc)
