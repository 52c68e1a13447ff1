"""Lost callbacks, end to end: the simulator sends but posts no events (as when Mailjet's
callbacks are gone); Mailer notices the silence (log line, status), and `backfill` restores
every status from /v3/REST/message and /messagehistory, idempotently with callbacks that
arrive later, within its call budget, resumably."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from mailer.db.pool import create_pool
from mailer.mailjet import MailjetClient
from mailer.ops.event_clock import ReceivedTypes, event_silence
from mailer.ops.status import format_report, status_report
from mailer.runtime import SIMULATOR_KEY, SIMULATOR_SECRET, MailjetTarget
from mailer.runtime import register_events_with_simulator as register
from mailer.simulator import EventsConfig, SimulatorServer
from mailer.simulator.events import Step, build_event
from mailer.tracking import intake
from mailer.tracking.backfill import backfill
from tests.integration.harness import Service, running_service, service_settings

SETTINGS = service_settings(
    events_user="mj", events_password="pw", event_silence_after=0.5, log_summary_seconds=0
)
SCRIPTS = {  # address -> the status its events lead to
    "ann+click@example.org": "clicked",
    "bob+bounce@example.org": "bounced",
    "carl+soft@example.org": "sent",
    "dan@example.org": "sent",
}


@contextlib.asynccontextmanager
async def lost_callbacks(db_dsn: str) -> AsyncIterator[tuple[Service, SimulatorServer]]:
    events = EventsConfig(post=False, group_ms=20)
    async with (
        SimulatorServer(api_key=SIMULATOR_KEY, secret_key=SIMULATOR_SECRET, events=events) as sim,
        running_service(db_dsn, sim, settings=SETTINGS) as svc,
    ):
        target = MailjetTarget(sim.url, SIMULATOR_KEY, SIMULATOR_SECRET)
        await register(SETTINGS, target, "127.0.0.1", int(svc.url.rsplit(":", 1)[1]))
        yield svc, sim


async def _queue_all(service: Service) -> tuple[str, dict[str, str]]:
    key = await service.create_app()
    jobs = {}
    for address in SCRIPTS:
        jobs[address] = await service.queue(
            key,
            {"from": {"email": "shop@example.org"}, "to": [{"email": address}],
             "subject": "Hi", "text": "x", "html": "<p>x</p>"},
        )  # fmt: skip
    for job in jobs.values():
        await service.wait_for(key, job)
    return key, jobs


async def _statuses(service: Service, key: str, jobs: dict[str, str]) -> dict[str, str]:
    return {a: (await service.status(key, j))["recipients"][0]["status"] for a, j in jobs.items()}


async def _wait_silent(pool: asyncpg.Pool, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        async with pool.acquire() as conn:
            if (await event_silence(conn, SETTINGS.event_silence_after)).silent:
                return
        assert time.monotonic() < deadline, "no silence detected"
        await asyncio.sleep(0.05)


async def test_silence_is_noticed_and_backfill_restores_statuses(
    db_dsn: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(intake, "RECEIVED", ReceivedTypes())  # no other test's throttle
    caplog.set_level(logging.INFO, logger="mailer.ops.event_clock")
    pool = await create_pool(db_dsn, min_size=1, max_size=4)
    try:
        async with lost_callbacks(db_dsn) as (service, sim):
            key, jobs = await _queue_all(service)
            await sim.events.wait_idle()
            assert set((await _statuses(service, key, jobs)).values()) == {"accepted"}
            await _wait_silent(pool)
            await asyncio.sleep(0.4)  # a few more checks: still one line
            silences = [r for r in caplog.records if getattr(r, "action", "") == "event_silence"]
            assert len(silences) == 1
            async with pool.acquire() as conn:
                report = await status_report(conn, silence_after=0.5)
            assert report["event_silence"]["silent"] and "EVENT SILENCE" in format_report(report)

            progress: list[tuple[int, int]] = []
            since = sim.state.accepted[0].accepted_at - 60
            async with MailjetClient(sim.url, SIMULATOR_KEY, SIMULATOR_SECRET) as client:
                done = await backfill(
                    pool, client, _utc(since), on_progress=lambda d, t: progress.append((d, t))
                )
                assert done.finished and done.total == 4 and done.messages_seen == 4
                assert done.histories_fetched == 4 and done.calls == 5  # 1 list + 4 histories
                assert progress[-1] == (4, 4)
                assert await _statuses(service, key, jobs) == SCRIPTS
                _, body = await service.request("GET", "/suppressions", key)
                assert [s["email"] for s in body["suppressions"]] == ["bob+bounce@example.org"]

                again = await backfill(pool, client, _utc(since), restart=True)
                assert again.events_stored == 0 and again.histories_fetched == 0  # all known

            # Mailjet's own callback for a backfilled event, arriving late: not stored again.
            ann = sim.state.messages_for(jobs["ann+click@example.org"])[0]
            late = [_callback(sim, ann, Step.SENT, ann.history[0]["EventAt"])]
            status, answer = await service.request(
                "POST", "/events", None, json=late, headers={"Authorization": _basic("mj", "pw")}
            )
            assert status == 200 and answer["stored"] == 0
            assert len(await _feed(service, key, "sent", 3)) == 3  # ann, carl, dan: one each
            async with pool.acquire() as conn:
                assert not (await event_silence(conn, 0.5)).silent  # a `sent` callback came
    finally:
        await pool.close()


async def test_backfill_stays_within_its_call_budget_and_resumes(db_dsn: str) -> None:
    pool = await create_pool(db_dsn, min_size=1, max_size=4)
    try:
        async with lost_callbacks(db_dsn) as (service, sim):
            key, jobs = await _queue_all(service)
            await sim.events.wait_idle()
            since = _utc(sim.state.accepted[0].accepted_at - 60)
            async with MailjetClient(sim.url, SIMULATOR_KEY, SIMULATOR_SECRET) as client:
                runs = []
                for _ in range(10):
                    runs.append(await backfill(pool, client, since, max_calls=2, page_size=2))
                    if runs[-1].finished:
                        break
            assert all(run.calls <= 2 for run in runs)
            assert [run.resumed for run in runs] == [False] + [True] * (len(runs) - 1)
            assert runs[-1].finished and runs[-1].histories_fetched == 4
            assert await _statuses(service, key, jobs) == SCRIPTS
    finally:
        await pool.close()


async def _feed(service: Service, key: str, kind: str, count: int) -> list[Any]:
    """The app's events of one type, once `count` are visible (the feed serves an event
    once every transaction older than its own has ended), or after a second."""
    deadline = time.monotonic() + 1.0
    while True:
        _, page = await service.request("GET", f"/feed?type={kind}", key)
        events: list[Any] = page["events"]
        if len(events) >= count or time.monotonic() > deadline:
            return events
        await asyncio.sleep(0.05)


def _utc(timestamp: float) -> Any:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(timestamp, UTC)


def _basic(user: str, password: str) -> str:
    import base64

    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _callback(sim: SimulatorServer, message: Any, step: Step, when: int) -> dict[str, Any]:
    return build_event(
        message,
        step,
        when=when,
        campaign_id=sim.state.campaign_id(message.campaign),
        contact_id=sim.state.contact_id(message.email),
        click_url="http://localhost/x",
    )
