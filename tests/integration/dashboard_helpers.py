"""The dashboard as an operator meets it over HTTP: the service with `/dashboard`, operators
made in the database, a login that keeps its cookies."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from mailer.dashboard import DashboardConfig
from mailer.dashboard.operators import Role, add_operator
from mailer.db.pool import connect
from mailer.simulator.server import SimulatorServer
from tests.integration.harness import Service, running_service
from tests.integration.tracking_helpers import FAST_RETRY, tracking_settings

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(page: str) -> str:
    """The CSRF token a page's forms carry."""
    found = _CSRF.search(page)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


async def new_operator(dsn: str, name: str, role: Role) -> str:
    """Add an operator in the database; return its one-time password."""
    conn = await connect(dsn)
    try:
        added = await add_operator(conn, name, role)
    finally:
        await conn.close()
    assert added is not None
    return added[1]


class Browser:
    """An HTTP client with its own cookie jar, as one person's browser; no redirects
    followed unless asked, so that each answer can be looked at."""

    def __init__(self, service: Service) -> None:
        self.url = service.url
        # unsafe: keep cookies for an IP address host (127.0.0.1).
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))

    async def get(self, path: str, **kwargs: Any) -> tuple[int, str, aiohttp.ClientResponse]:
        async with self.http.get(self.url + path, allow_redirects=False, **kwargs) as r:
            return r.status, await r.text(), r

    async def post(
        self, path: str, form: dict[str, str], **kwargs: Any
    ) -> tuple[int, str, aiohttp.ClientResponse]:
        async with self.http.post(self.url + path, data=form, allow_redirects=False, **kwargs) as r:
            return r.status, await r.text(), r

    async def login(self, name: str, password: str) -> tuple[int, str, aiohttp.ClientResponse]:
        """Open the login page and post the form, as a person would."""
        _, page, _ = await self.get("/dashboard/login")
        return await self.post(
            "/dashboard/login",
            {"csrf": csrf_of(page), "name": name, "password": password, "next": "/dashboard"},
        )

    async def close(self) -> None:
        await self.http.close()


@contextlib.asynccontextmanager
async def dashboard_service(
    db_dsn: str, simulator: SimulatorServer, config: DashboardConfig | None = None
) -> AsyncIterator[Service]:
    """API, worker and dashboard against the simulator."""
    async with running_service(
        db_dsn,
        simulator,
        settings=tracking_settings(),
        policy=FAST_RETRY,
        dashboard=config or DashboardConfig(),
    ) as svc:
        yield svc


@contextlib.asynccontextmanager
async def browser(service: Service) -> AsyncIterator[Browser]:
    b = Browser(service)
    try:
        yield b
    finally:
        await b.close()
