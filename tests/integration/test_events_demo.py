"""The local demo end to end: Mailer sends through the simulator, the simulator posts the
scripted tracking events back to Mailer's /events (registered the way `mailer run` does),
and the job's status shows the email's whole life."""

from __future__ import annotations

import contextlib
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


@contextlib.asynccontextmanager
async def demo(db_dsn: str) -> AsyncIterator[tuple[Service, SimulatorServer]]:
    """Mailer and a simulator posting its events back, as `mailer run` sets them up."""
    events = EventsConfig(group_ms=20, retry_interval=0.1)
    policy = RetryPolicy(base_delay_s=0.05, max_delay_s=0.2, max_attempts=10)
    async with (
        SimulatorServer(api_key=SIMULATOR_KEY, secret_key=SIMULATOR_SECRET, events=events) as sim,
        running_service(db_dsn, sim, settings=SETTINGS, policy=policy) as svc,
    ):
        target = MailjetTarget(sim.url, SIMULATOR_KEY, SIMULATOR_SECRET)
        port = int(svc.url.rsplit(":", 1)[1])
        url = await register_events_with_simulator(SETTINGS, target, "127.0.0.1", port)
        assert url == f"http://mailjet-demo:demo%20pass%401@127.0.0.1:{port}/events"
        yield svc, sim


@pytest.fixture
async def started(db_dsn: str) -> AsyncIterator[tuple[Service, SimulatorServer]]:
    async with demo(db_dsn) as both:
        yield both


def email(to: str) -> dict[str, Any]:
    return {
        "from": {"email": "shop@example.org"},
        "to": [{"email": to}],
        "subject": "Your order",
        "text": "Thanks!",
        "html": '<p><a href="http://localhost/order">Thanks!</a></p>',
    }


async def test_an_email_s_whole_life_reaches_mailer(
    started: tuple[Service, SimulatorServer],
) -> None:
    service, simulator = started
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


async def test_a_restarted_demo_links_events_to_the_new_messages(db_dsn: str) -> None:
    # `mailer run` keeps its database across restarts while its simulator starts afresh:
    # a simulator that numbered its MessageIDs from the same start again had the new
    # message's events link (by MessageID) to the old message, which stayed "accepted".
    async with demo(db_dsn) as (service, _):
        key = await service.create_app()
        first = await service.queue(key, email("ann+click@example.org"))
        await service.wait_for(key, first, {"clicked"})
    async with demo(db_dsn) as (service, _):
        second = await service.queue(key, email("ann+click@example.org"))
        done = await service.wait_for(key, second, {"clicked"})
        assert done["recipients"][0]["status"] == "clicked"
        assert (
            done["recipients"][0]["message_id"]
            != (await service.status(key, first))["recipients"][0]["message_id"]
        )
