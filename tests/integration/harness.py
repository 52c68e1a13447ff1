"""The real service, in-process on a real socket: API + worker against PostgreSQL and the
Mailjet simulator, driven over real HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import uvicorn

from mailer.api.app import create_app
from mailer.apps import store
from mailer.config import Settings
from mailer.dashboard import DashboardConfig
from mailer.dashboard import install as install_dashboard
from mailer.db.pool import connect
from mailer.delivery.retry import RetryPolicy
from mailer.runtime import SIMULATOR_KEY, SIMULATOR_SECRET, MailjetTarget, running_worker
from mailer.services import Services
from mailer.simulator.server import SimulatorServer
from mailer.vault import SecretBox
from mailer.webhooks.targets import TargetPolicy

TEST_SECRET_KEY = "PVC_nduR0uTyuUZQbyz7o0Xp5MYldIt5fI9cxEUZQew="
"""MAILER_SECRET_KEY of the tests' services (a fixed Fernet key)."""
TEST_BOX = SecretBox([TEST_SECRET_KEY])
TEST_WEBHOOK_NETWORKS = "127.0.0.0/8"
"""Where the tests' webhook receivers listen, allowed as webhook targets."""
LOOPBACK = TargetPolicy.allowing(TEST_WEBHOOK_NETWORKS)
"""The target policy of the tests' dispatchers: their receivers on 127.0.0.1."""

FINAL = {"accepted", "sent", "failed", "suppressed", "opened", "clicked", "bounced", "blocked"}


def service_settings(**overrides: Any) -> Settings:
    """Settings for tests: quick polls and leases, no Mailjet keys, webhooks to loopback."""
    values: dict[str, Any] = {
        "poll_interval": 0.2,
        "lease_seconds": 40.0,
        "mailjet_timeout": 2.0,
        "key_cache_seconds": 0.0,
        "lookup_grace_seconds": 0.2,
        # The tests' webhook receivers listen on 127.0.0.1.
        "webhook_allowed_networks": TEST_WEBHOOK_NETWORKS,
        "secret_key": TEST_SECRET_KEY,
    }
    values.update(overrides)
    return Settings(**values)


class Service:
    """A running service and an HTTP client for it."""

    def __init__(self, url: str, http: aiohttp.ClientSession, dsn: str) -> None:
        self.url = url
        self.http = http
        self.dsn = dsn

    async def create_app(self, name: str = "shop") -> str:
        """Create an app directly in the database; return its API key."""
        conn = await connect(self.dsn)
        try:
            _, key = await store.create_app(conn, name)
        finally:
            await conn.close()
        return key

    async def request(
        self, method: str, path: str, key: str | None, **kwargs: Any
    ) -> tuple[int, Any]:
        """Make an API call; return (status, parsed JSON body)."""
        headers = dict(kwargs.pop("headers", {}))
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        async with self.http.request(method, self.url + path, headers=headers, **kwargs) as r:
            return r.status, await r.json(content_type=None)

    async def queue(self, key: str, email: dict[str, Any], **kwargs: Any) -> str:
        """Queue an email that must be accepted; return its job id."""
        status, body = await self.request("POST", "/queue", key, json=email, **kwargs)
        assert status == 202, body
        job_id: str = body["job_id"]
        return job_id

    async def status(self, key: str, job_id: str) -> dict[str, Any]:
        """The job's status document."""
        status, body = await self.request("GET", f"/status/{job_id}", key)
        assert status == 200, body
        result: dict[str, Any] = body
        return result

    async def wait_for(
        self, key: str, job_id: str, statuses: set[str] = FINAL, timeout: float = 15.0
    ) -> dict[str, Any]:
        """Poll /status until the job reaches one of `statuses`."""
        deadline = time.monotonic() + timeout
        while True:
            body = await self.status(key, job_id)
            if body["status"] in statuses:
                return body
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job_id} stuck in {body['status']}: {body}")
            await asyncio.sleep(0.05)


def free_socket() -> socket.socket:
    """A listening-ready socket on 127.0.0.1 with a free port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextlib.asynccontextmanager
async def serve_api(app: Any) -> AsyncIterator[str]:
    """Serve an ASGI app on a free loopback port for the duration; yield its base URL."""
    sock = free_socket()
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


@contextlib.asynccontextmanager
async def running_service(
    dsn: str,
    simulator: SimulatorServer | None,
    *,
    worker: bool = True,
    settings: Settings | None = None,
    policy: RetryPolicy | None = None,
    dashboard: DashboardConfig | None = None,
) -> AsyncIterator[Service]:
    """API (and, unless told otherwise, a worker) on `dsn`, sending to `simulator`; with
    `dashboard`, the operator dashboard too (as `mailer api` serves it)."""
    settings = settings or service_settings()
    companion = None
    if worker:
        assert simulator is not None
        target = MailjetTarget(simulator.url, SIMULATOR_KEY, SIMULATOR_SECRET)

        @contextlib.asynccontextmanager
        async def companion_cm(services: Services) -> AsyncIterator[object]:
            async with running_worker(settings, dsn, services.pool, target, policy=policy) as w:
                yield w

        companion = companion_cm
    app = create_app(settings, dsn, companion=companion)
    if dashboard is not None:
        install_dashboard(app, dashboard)
    async with serve_api(app) as url, aiohttp.ClientSession() as http:
        yield Service(url, http, dsn)
