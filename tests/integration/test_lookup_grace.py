"""Resend only when Mailjet has not got it: after a lost answer the worker looks the job up
by CustomID; Mailjet's index lags behind a fresh send (the simulator's `lookup_lag_ms`),
so a lookup that finds nothing is repeated after a grace period before the job is resent."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from mailer.delivery.retry import RetryPolicy
from mailer.runtime import SIMULATOR_KEY, SIMULATOR_SECRET
from mailer.simulator import SimulatorServer
from mailer.simulator.faults import FaultConfig
from tests.integration.harness import Service, running_service, service_settings

LAG_MS = 700.0
POLICY = RetryPolicy(base_delay_s=0.05, max_delay_s=0.1)


@contextlib.asynccontextmanager
async def mailer(db_dsn: str, grace: float) -> AsyncIterator[tuple[Service, SimulatorServer]]:
    settings = service_settings(lookup_grace_seconds=grace)
    async with (
        SimulatorServer(api_key=SIMULATOR_KEY, secret_key=SIMULATOR_SECRET) as sim,
        running_service(db_dsn, sim, settings=settings, policy=POLICY) as svc,
    ):
        yield svc, sim


async def _send_with_a_lost_answer(service: Service, sim: SimulatorServer) -> tuple[str, str]:
    """Queue a job whose first send Mailjet takes but whose answer is lost; from then on
    Mailjet answers, and its lookups lag LAG_MS behind."""
    key = await service.create_app()
    sim.set_faults(FaultConfig(lost_answer_rate=1.0, lookup_lag_ms=LAG_MS))
    job_id = await service.queue(
        key, {"from": {"email": "a@shop.example"}, "to": [{"email": "ann@example.org"}],
              "subject": "Hi", "text": "x"},
    )  # fmt: skip
    for _ in range(200):
        if sim.state.count_for(job_id):
            break
        await asyncio.sleep(0.01)
    sim.set_faults(FaultConfig(lookup_lag_ms=LAG_MS))
    return key, job_id


@pytest.mark.parametrize(("grace", "sends"), [(1.0, 1), (0.0, 2)], ids=["grace", "no-grace"])
async def test_a_lookup_that_finds_nothing_waits_for_the_index_before_resending(
    db_dsn: str, grace: float, sends: int
) -> None:
    async with mailer(db_dsn, grace) as (service, sim):
        key, job_id = await _send_with_a_lost_answer(service, sim)
        done = await service.wait_for(key, job_id, timeout=10)
        assert done["status"] == "accepted"
        # Without the grace, the lookup right after the lost answer misses the lagging
        # index and the email goes out twice; with it, the second lookup finds it.
        assert sim.state.count_for(job_id) == sends
        first = sim.state.messages_for(job_id)[0].message_id
        if sends == 1:
            assert done["recipients"][0]["message_id"] == str(first)
            assert done["attempts"] == 2  # the waiting lookup used no attempt


async def test_a_send_mailjet_never_got_is_sent_after_two_lookups(db_dsn: str) -> None:
    async with mailer(db_dsn, 0.3) as (service, sim):
        key = await service.create_app()
        sim.set_faults(FaultConfig(error_500_rate=1.0))  # refused, nothing taken
        job_id = await service.queue(
            key, {"from": {"email": "a@shop.example"}, "to": [{"email": "bo@example.org"}],
                  "subject": "Hi", "text": "x"},
        )  # fmt: skip
        for _ in range(200):
            if (await service.status(key, job_id))["last_error"] is not None:
                break
            await asyncio.sleep(0.01)
        sim.set_faults(FaultConfig())
        done = await service.wait_for(key, job_id, timeout=10)
        assert done["status"] == "accepted" and sim.state.count_for(job_id) == 1
