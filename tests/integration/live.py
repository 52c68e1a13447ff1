"""Mailer as apps meet it, for the client, Django and SMTP tests: API + worker + a simulator
that posts its scripted tracking events back, all on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from mailer.config import Settings
from mailer.dashboard import DashboardConfig
from mailer.delivery.retry import RetryPolicy
from mailer.runtime import (
    SIMULATOR_KEY,
    SIMULATOR_SECRET,
    MailjetTarget,
    register_events_with_simulator,
)
from mailer.simulator import EventsConfig, SimulatorServer
from tests.integration.harness import Service, running_service, service_settings

SETTINGS = service_settings(events_user="mailjet-live", events_password="live-pass")
SENT_OR_BEYOND = {"sent", "opened", "clicked"}


@contextlib.asynccontextmanager
async def live_mailer(
    db_dsn: str, settings: Settings = SETTINGS, *, dashboard: DashboardConfig | None = None
) -> AsyncIterator[tuple[Service, SimulatorServer]]:
    """A running Mailer whose simulator posts tracking events back to its `/events` (with
    the operator dashboard when `dashboard` is given)."""
    events = EventsConfig(group_ms=20, retry_interval=0.1)
    policy = RetryPolicy(base_delay_s=0.05, max_delay_s=0.2, max_attempts=10)
    async with (
        SimulatorServer(api_key=SIMULATOR_KEY, secret_key=SIMULATOR_SECRET, events=events) as sim,
        running_service(db_dsn, sim, settings=settings, policy=policy, dashboard=dashboard) as svc,
    ):
        target = MailjetTarget(sim.url, SIMULATOR_KEY, SIMULATOR_SECRET)
        port = int(svc.url.rsplit(":", 1)[1])
        await register_events_with_simulator(settings, target, "127.0.0.1", port)
        yield svc, sim


async def wait_recipients(
    service: Service,
    key: str,
    job_id: str,
    statuses: set[str] = SENT_OR_BEYOND,
    timeout: float = 15.0,
) -> dict[str, Any]:
    """Poll `/status` until every recipient of the job is in `statuses`."""
    deadline = time.monotonic() + timeout
    while True:
        body = await service.status(key, job_id)
        if body["recipients"] and all(r["status"] in statuses for r in body["recipients"]):
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} not {statuses}: {body}")
        await asyncio.sleep(0.05)
