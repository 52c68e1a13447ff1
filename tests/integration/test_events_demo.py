"""The local demo end to end: Mailer sends through the simulator, the simulator posts the
scripted tracking events back to Mailer's /events (registered the way `mailer run` does),
and the job's status shows the email's whole life."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from mailer.delivery.retry import RetryPolicy
from mailer.mailjet.registration import ALL_EVENT_TYPES
from mailer.runtime import (
    SIMULATOR_KEY,
    SIMULATOR_SECRET,
    MailjetTarget,
    register_events_with_simulator,
)
from mailer.simulator import EventsConfig, SimulatorServer
from tests.integration.harness import Service, running_service, service_settings

SETTINGS = service_settings(events_user="mailjet-demo", events_password="demo pass@1")


@pytest.fixture
async def simulator() -> AsyncIterator[SimulatorServer]:
    events = EventsConfig(group_ms=20, retry_interval=0.1)
    async with SimulatorServer(
        api_key=SIMULATOR_KEY, secret_key=SIMULATOR_SECRET, events=events
    ) as sim:
        yield sim


@pytest.fixture
async def service(db_dsn: str, simulator: SimulatorServer) -> AsyncIterator[Service]:
    policy = RetryPolicy(base_delay_s=0.05, max_delay_s=0.2, max_attempts=10)
    async with running_service(db_dsn, simulator, settings=SETTINGS, policy=policy) as svc:
        target = MailjetTarget(simulator.url, SIMULATOR_KEY, SIMULATOR_SECRET)
        port = int(svc.url.rsplit(":", 1)[1])
        url = await register_events_with_simulator(SETTINGS, target, "127.0.0.1", port)
        assert url == f"http://mailjet-demo:demo%20pass%401@127.0.0.1:{port}/events"
        yield svc


def email(to: str) -> dict[str, Any]:
    return {
        "from": {"email": "shop@example.org"},
        "to": [{"email": to}],
        "subject": "Your order",
        "text": "Thanks!",
        "html": '<p><a href="http://localhost/order">Thanks!</a></p>',
    }


async def test_an_email_s_whole_life_reaches_mailer(
    service: Service, simulator: SimulatorServer
) -> None:
    registered = {r.event_type for r in simulator.state.callbacks.values()}
    assert registered == set(ALL_EVENT_TYPES)
    key = await service.create_app()
    clicked = await service.queue(key, email("ann+click@example.org"))
    bounced = await service.queue(key, email("bob+bounce@example.org"))

    done = await service.wait_for(key, clicked, {"clicked"})
    assert done["recipients"][0]["status"] == "clicked"
    done = await service.wait_for(key, bounced, {"bounced"})
    assert done["recipients"][0]["status"] == "bounced"

    await simulator.events.wait_idle()
    deliveries = list(simulator.state.deliveries)
    assert deliveries and all(d.delivered and d.authorization for d in deliveries)
    assert all(d.attempts[-1].status == 200 for d in deliveries)
