"""What this wave's features cost on the hot paths: tags and daily quotas, in one run.

Metrics have their own scenario (`scenarios_metrics`); this one takes the other two:
- `POST /queue` for an app without limits and untagged emails (the baseline), for the same
  emails with two tags each (each tag is a `job_tags` row, a tag on every recipient and one
  more stats row per tag), and for an app with a daily quota (each email is counted
  against it in its own transaction instead of joining a coalesced write);
- `POST /events` about untagged messages and about messages with two tags (every event is
  counted in the stats once more per tag);
- a worker draining untagged and tagged backlogs (sending counts per tag too).

Each setting takes its turn every round (the order rotates) and the round with the median
CPU ratio is reported. The figure that counts is CPU time per unit of work of Mailer's
processes and of the PostgreSQL backends serving the database, read from /proc, which the
machine's other tenants disturb far less than throughput.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import orjson

from bench import cpu, infra
from bench.load import raw_request
from bench.payloads import email_body, event_bodies
from bench.report import Row
from bench.scenarios_api import EVENTS_PER_POST, _basic, _bearer, _fresh_bodies
from bench.scenarios_metrics import Measure, Run, known_messages, median_by_cpu
from bench.stack import EVENTS_PASSWORD, EVENTS_USER, Bench, wait_drained
from mailer.db.pool import connect
from mailer.delivery.email import EmailRequest
from mailer.delivery.enqueue import insert_jobs, new_job
from mailer.delivery.limits import set_limits

SIMULATOR_LATENCY_MS = 50.0
TAGS = ["receipt", "shop"]
# Far above what the scenario sends: the quota is checked and counted, never reached.
DAILY_QUOTA = 1_000_000_000


async def features(b: Bench) -> None:
    """Tags and quotas on `POST /queue`, tags on `POST /events` and on a worker's drain."""
    s = b.size
    rounds = 1 if s.name == "smoke" else max(s.single_rounds, 3)
    async with infra.fresh_database(b.server) as dsn, b.simulator(SIMULATOR_LATENCY_MS) as sim:
        plain_app, plain_key = await infra.create_app(dsn, "plain")
        _, quota_key = await infra.create_app(dsn, "quota")
        conn = await connect(dsn)
        try:
            quota_app = await conn.fetchval("SELECT id FROM apps WHERE name = 'quota'")
            await set_limits(conn, quota_app, daily=DAILY_QUOTA)
            known = await known_messages(dsn, plain_app, s.known_messages)
            tagged = {job_id for _, _, job_id in known[::2]}  # every other message
            await conn.execute(_TAG_JOBS, [uuid.UUID(j) for j in tagged], TAGS)
        finally:
            await conn.close()
        kinds = {"plain": (plain_key, None), "tags": (plain_key, TAGS), "quota": (quota_key, None)}
        async with b.api(dsn) as api:

            async def enqueue(setting: str, turn: int) -> Run:
                key, tags = kinds[setting]
                start = (turn * len(kinds) + list(kinds).index(setting)) * s.single_bodies
                raws = [
                    raw_request(api.port, "POST", "/queue", _body(i, tags), _bearer(key))
                    for i in range(start, start + s.single_bodies)
                ]
                async with _meter(dsn, api) as meter:
                    result = await b.load.closed(
                        api.port,
                        raws,
                        connections=s.single_connections,
                        duration=s.duration,
                        warmup=s.warmup,
                    )
                answered = result.count(202) + result.warmup_statuses.get(202, 0)
                return Run(
                    result.count(202) / result.seconds, meter.seconds / max(answered, 1) * 1e6
                )

            await _compare(b, "POST /queue", "req/s", "request", rounds, enqueue, ["tags", "quota"])

            auth = _basic(EVENTS_USER, EVENTS_PASSWORD)
            tagged_known = [k for k in known if k[2] in tagged]
            plain_known = [k for k in known if k[2] not in tagged]
            known_by = {"plain": plain_known, "tags": tagged_known}
            # New events only (tags count for those, not for redeliveries): bodies enough
            # for the run, each round's a day after the last's.
            count = _fresh_bodies(s)

            async def intake(setting: str, turn: int) -> Run:
                bodies = event_bodies(
                    known_by[setting], EVENTS_PER_POST, count, distinct=True, later=turn * 86_400
                )
                raws = [raw_request(api.port, "POST", "/events", x, auth) for x in bodies]
                async with _meter(dsn, api) as meter:
                    result = await b.load.closed(
                        api.port, raws, connections=16, duration=s.duration, warmup=s.warmup
                    )
                posts = result.count(200) + result.warmup_statuses.get(200, 0)
                rate = result.count(200) * EVENTS_PER_POST / result.seconds
                return Run(rate, meter.seconds / max(posts * EVENTS_PER_POST, 1) * 1e6)

            what = "POST /events (grouped, 100/request)"
            await _compare(b, what, "events/s", "event", rounds, intake, ["tags"])

        # What the enqueue rounds queued is sent first, so that each drain starts empty.
        async with b.worker(dsn, sim) as worker:
            await wait_drained(dsn, timeout=900, poll=0.2)
            jobs = max(s.delivery_jobs // 5, 1_000)

            async def drain(setting: str, turn: int) -> Run:
                tags = TAGS if setting == "tags" else None
                backlog = [
                    new_job(plain_app, EmailRequest.model_validate(_email(i, tags, turn)))
                    for i in range(jobs)
                ]
                async with _meter(dsn, worker) as meter:
                    conn = await connect(dsn)
                    try:
                        async with conn.transaction():
                            await insert_jobs(conn, backlog)
                        began = time.perf_counter()
                    finally:
                        await conn.close()
                    drained = await wait_drained(dsn, timeout=600, poll=0.05)
                return Run(jobs / (drained - began), meter.seconds / jobs * 1e6)

            what = f"worker drains {jobs:,} emails"
            await _compare(b, what, "emails/s", "email", rounds, drain, ["tags"])
    b.report.note(
        f"features: tags = {len(TAGS)} per email; quota = a daily quota of {DAILY_QUOTA:,} "
        "(checked and counted, never reached); CPU = Mailer's processes and the PostgreSQL "
        "backends serving the database"
    )


def _email(index: int, tags: list[str] | None, run: object = "") -> dict[str, object]:
    body = email_body(index, f"r{run}")
    if tags:
        body["tags"] = tags
    return body


def _body(index: int, tags: list[str] | None) -> bytes:
    return orjson.dumps(_email(index, tags))


@dataclass
class Used:
    """CPU seconds used, known once the block it measures has ended."""

    seconds: float = 0.0


@contextlib.asynccontextmanager
async def _meter(dsn: str, proc: infra.Proc) -> AsyncIterator[Used]:
    """CPU seconds of one Mailer process (its children too) and of the PostgreSQL backends
    serving the database, over the block."""
    conn = await asyncpg.connect(dsn)
    used = Used()
    try:
        kinds = cpu.ProcessKinds(conn, {"mailer": proc})
        await kinds.start()
        yield used
        used.seconds = sum((await kinds.stop()).values())
    finally:
        await conn.close()


async def _compare(
    b: Bench,
    what: str,
    unit: str,
    per: str,
    rounds: int,
    measure: Measure,
    others: list[str],
) -> None:
    """Rounds of the baseline ("plain") and each of `others`, in rotating order; per
    setting, the round with the median CPU ratio is reported."""
    settings = ["plain", *others]
    runs: list[dict[str, Run]] = []
    for turn in range(rounds):
        shift = turn % len(settings)
        order = settings[shift:] + settings[:shift]
        runs.append({setting: await measure(setting, turn) for setting in order})
    for other in others:
        median = runs[median_by_cpu([(r["plain"], r[other]) for r in runs])]
        base, run = median["plain"], median[other]
        label = f"{len(TAGS)} tags per email" if other == "tags" else "an app with a daily quota"
        b.report.add(
            Row(
                "features",
                f"{what}, {label}: CPU per {per} (Mailer + PostgreSQL)",
                round(run.cpu_us, 1),
                "µs",
                "untagged, no quota",
                round(base.cpu_us, 1),
                note=f"throughput {run.rate:,.0f} vs {base.rate:,.0f} {unit}; no target",
            )
        )
        each = "; ".join(f"{r['plain'].cpu_us:,.1f} vs {r[other].cpu_us:,.1f} µs" for r in runs)
        b.report.note(f"features: {what}, untagged vs {other}, CPU per {per} per round: {each}")


# Known jobs, and their recipients, given TAGS as `POST /queue` would have stored them.
_TAG_JOBS = """
WITH tagged AS (UPDATE jobs SET tags = $2 WHERE id = ANY ($1::uuid[]) RETURNING id)
UPDATE messages m SET tags = $2 FROM tagged t WHERE m.job_id = t.id
"""
