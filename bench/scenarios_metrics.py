"""The cost of the metrics: the hot paths with MAILER_METRICS=off and on, in one run.

Two APIs run side by side on one database, one counting and one not, and take turns (the
order swapped every round) at `POST /queue` and `POST /events`; then a worker of each kind
drains a fresh backlog in turn. Each figure is the round with the median on/off ratio, as
in the single scenario: the machine's state drifts between rounds but is shared within one.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable

import asyncpg

from bench import infra
from bench.load import raw_request
from bench.payloads import event_bodies, new_jobs
from bench.report import Row
from bench.scenarios_api import (
    _KNOWN_MESSAGES,
    _KNOWN_RECIPIENTS,
    EVENTS_PER_POST,
    _basic,
    _bearer,
    _single_bodies,
)
from bench.stack import EVENTS_PASSWORD, EVENTS_USER, Bench, wait_drained
from mailer.db.pool import connect
from mailer.delivery.enqueue import insert_jobs

SIMULATOR_LATENCY_MS = 50.0
SETTINGS = ("off", "on")
TARGET = 0.97  # the issue: no more than 3 % slower with metrics on

Measure = Callable[[str, int], Awaitable[float]]


async def metrics(b: Bench) -> None:
    """POST /queue, POST /events and a worker's drain, each with metrics off and on."""
    s = b.size
    rounds = max(s.single_rounds, 2)
    async with infra.fresh_database(b.server) as dsn, b.simulator(SIMULATOR_LATENCY_MS) as sim:
        app_id, key = await infra.create_app(dsn)
        known = await _known_messages(dsn, app_id, s.known_messages)
        events = event_bodies(known, EVENTS_PER_POST, 64)
        auth = _basic(EVENTS_USER, EVENTS_PASSWORD)
        async with (
            b.api(dsn, env={"MAILER_METRICS": "off"}) as off,
            b.api(dsn, env={"MAILER_METRICS": "on"}) as on,
        ):
            ports = {"off": off.port, "on": on.port}

            async def enqueue(setting: str, turn: int) -> float:
                port = ports[setting]
                start = (2 * turn + SETTINGS.index(setting)) * s.single_bodies
                bodies = _single_bodies(s.single_bodies, start=start)
                raws = [raw_request(port, "POST", "/queue", x, _bearer(key)) for x in bodies]
                result = await b.load.closed(
                    port,
                    raws,
                    connections=s.single_connections,
                    duration=s.duration,
                    warmup=s.warmup,
                )
                return result.count(202) / result.seconds

            async def intake(setting: str, turn: int) -> float:
                port = ports[setting]
                raws = [raw_request(port, "POST", "/events", x, auth) for x in events]
                result = await b.load.closed(
                    port, raws, connections=16, duration=s.duration, warmup=s.warmup
                )
                return result.count(200) * EVENTS_PER_POST / result.seconds

            await _compare(b, "POST /queue", "req/s", rounds, enqueue)
            await _compare(b, "POST /events (grouped, 100/request)", "events/s", rounds, intake)
        # The enqueue rounds left jobs queued: let a worker send them before the drains.
        async with b.worker(dsn, sim):
            await wait_drained(dsn, timeout=900, poll=0.2)

        jobs = max(s.delivery_jobs // 5, 1_000)

        async def drain(setting: str, turn: int) -> float:
            backlog = new_jobs(app_id, jobs)
            async with b.worker(dsn, sim, env={"MAILER_METRICS": setting}):
                conn = await connect(dsn)
                try:
                    async with conn.transaction():
                        await insert_jobs(conn, backlog)
                    began = time.perf_counter()
                finally:
                    await conn.close()
                drained = await wait_drained(dsn, timeout=600, poll=0.05)
            return jobs / (drained - began)

        await _compare(b, f"worker drains {jobs:,} emails", "emails/s", rounds, drain)
    b.report.note(
        "metrics: the event bodies go round, so after the first pass most events are "
        "redeliveries, with metrics on and off alike"
    )


async def _compare(b: Bench, what: str, unit: str, rounds: int, measure: Measure) -> None:
    """Rounds of off and on (order swapped each round); the median round is reported."""
    pairs: list[tuple[float, float]] = []
    for turn in range(rounds):
        order = SETTINGS if turn % 2 == 0 else SETTINGS[::-1]
        got = {setting: await measure(setting, turn) for setting in order}
        pairs.append((got["off"], got["on"]))
    ratios = [on / off if off else 0.0 for off, on in pairs]
    median = sorted(range(rounds), key=ratios.__getitem__)[rounds // 2]
    off_rate, on_rate = pairs[median]
    b.report.add(
        Row(
            "metrics",
            f"{what}, metrics on",
            on_rate,
            unit,
            "metrics off",
            off_rate,
            target=f">= {TARGET}x",
            met=on_rate >= TARGET * off_rate,
        )
    )
    each = "; ".join(
        f"{off:,.0f} vs {on:,.0f} ({r:.3f}x)" for (off, on), r in zip(pairs, ratios, strict=True)
    )
    b.report.note(f"metrics: {what}, off vs on per round: {each}")


async def _known_messages(dsn: str, app_id: uuid.UUID, count: int) -> list[tuple[int, str, str]]:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(_KNOWN_MESSAGES, app_id, count)
        await conn.execute(_KNOWN_RECIPIENTS)
        return [
            (r["message_id"], r["email"], str(r["job_id"]))
            for r in await conn.fetch("SELECT message_id, email, job_id FROM messages")
        ]
    finally:
        await conn.close()
