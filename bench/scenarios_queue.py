"""Scenarios on the queue side: delivery drain (with its peers), backlog scale, soak."""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import os
import sys
import time
from typing import Any

import aiohttp
import asyncpg
import orjson

from bench import cpu, infra
from bench.load import raw_request
from bench.payloads import batch_body, new_jobs, send_call_body
from bench.report import Row
from bench.stack import EVENTS_PASSWORD, EVENTS_USER, Bench, Simulator, wait_drained
from mailer.db.pool import connect, create_pool
from mailer.delivery import send, store
from mailer.delivery.batching import MAX_RECIPIENTS_PER_CALL, AcceptedRecipient
from mailer.delivery.enqueue import insert_jobs
from mailer.lifecycle.address_key import AddressKey
from mailer.runtime import SIMULATOR_KEY, SIMULATOR_SECRET

SIMULATOR_LATENCY_MS = 50.0
PEER_CONCURRENCY = 10
CLAIM_LIMIT = 100


async def delivery(b: Bench) -> None:
    """Drain a backlog of one-recipient emails through the simulator (50 ms per call), with
    the CPU each process kind used; the peers at their best: PgQueuer (a sweep of its
    settings) and procrastinate draining no-op jobs, post_office sending emails through
    anymail to the same simulator (a sweep of its settings); the simulator's ceiling."""
    s = b.size
    async with b.simulator(SIMULATOR_LATENCY_MS) as sim:
        ceiling = await _simulator_ceiling(b, sim)
        # Calls the generator left in flight are still sleeping in the simulator: let them
        # land before forgetting them.
        await asyncio.sleep(SIMULATOR_LATENCY_MS / 1000 + 1.0)
        await sim.reset()
        async with infra.fresh_database(b.server) as dsn:
            app_id, _ = await infra.create_app(dsn)
            jobs = new_jobs(app_id, s.delivery_jobs)
            async with b.worker(dsn, sim) as worker:
                meter_conn = await asyncpg.connect(dsn)
                conn = await connect(dsn)
                try:
                    kinds = None
                    if cpu.available() and await cpu.local_server(meter_conn):
                        kinds = cpu.ProcessKinds(meter_conn, {"worker": worker})
                    transaction = conn.transaction()
                    await transaction.start()
                    await insert_jobs(conn, jobs)
                    if kinds is not None:
                        await kinds.start()
                    began = time.perf_counter()
                    await transaction.commit()  # the backlog appears at once, with one NOTIFY
                    drained = await wait_drained(dsn, timeout=600, poll=0.1)
                    used = await kinds.stop() if kinds is not None else None
                finally:
                    await conn.close()
                    await meter_conn.close()
            recorded = int(
                await infra.fetchval(
                    dsn,
                    "SELECT count(*) FROM messages "
                    "WHERE status = 'accepted' AND message_id IS NOT NULL",
                )
            )
        stats = await sim.stats()
        post_office = await _post_office_sweep(b, sim)
        pgqueuer_sending = await _pgqueuer_sweep(b, sim)
    rate = len(jobs) / (drained - began)
    pgqueuer = await _pgqueuer_sweep(b)
    procrastinate = None
    if _installed(b, "procrastinate"):
        procrastinate = await _peer(b, ["procrastinate", "--concurrency", str(PEER_CONCURRENCY)])
        b.report.add(
            Row(
                "delivery",
                f"procrastinate: no-op jobs, concurrency {PEER_CONCURRENCY}",
                procrastinate["rate"],
                "jobs/s",
                note=_drain_note(b, procrastinate),
            )
        )

    b.report.add(
        Row(
            "delivery",
            f"simulator ceiling ({SIMULATOR_LATENCY_MS:.0f} ms, 50-message calls, 32 at a time)",
            ceiling,
            "emails/s",
        )
    )
    b.report.add(
        Row(
            "delivery",
            f"drain {len(jobs):,} one-recipient emails, sent and recorded",
            rate,
            "emails/s",
            "simulator ceiling",
            ceiling,
            target=">= 0.6x",
            met=rate >= 0.6 * ceiling,
            note=f"{drained - began:.1f} s",
        )
    )
    for peer, (setting, best), target in (
        ("PgQueuer", pgqueuer, 15),
        ("post_office", post_office, 40),
        ("PgQueuer sending each email", pgqueuer_sending, None),
    ):
        if best is None:
            continue
        b.report.add(
            Row(
                "delivery",
                f"drain vs {peer} at its best ({setting})",
                rate,
                "emails/s",
                peer,
                best,
                target="" if target is None else f">= {target}x",
                met=None if target is None else rate >= target * best,
                note="no target: the like-for-like peer (one Send API call per email)"
                if target is None
                else "",
            )
        )
    if used is not None:
        cpu_rows(b, "delivery", used, len(jobs))
    by_custom_id: dict[str, int] = stats["by_custom_id"]
    expected = {str(j.id) for j in jobs}
    once = (
        stats["accepted_messages"] == len(jobs)
        and not stats["duplicates"]
        and set(by_custom_id) == expected
        and all(n == 1 for n in by_custom_id.values())
    )
    b.report.check("delivery: every email sent exactly once", once)
    if not once:
        b.report.note(
            f"delivery: simulator accepted {stats['accepted_messages']} messages for "
            f"{len(jobs)} jobs; {len(stats['duplicates'])} sent twice; "
            f"{len(expected - set(by_custom_id))} never; "
            f"{len(set(by_custom_id) - expected)} unknown CustomIDs"
        )
    b.report.check("delivery: every send recorded", recorded == len(jobs))


def cpu_rows(b: Bench, scenario: str, used: dict[str, float], emails: int) -> None:
    """One row per process kind: CPU seconds per 1,000 emails (and their sum)."""
    for kind, seconds in used.items():
        b.report.add(
            Row(
                scenario,
                f"CPU per 1,000 emails: {kind}",
                seconds * 1000 / emails,
                "CPU s",
                note=f"{seconds:.1f} CPU s for {emails:,} emails",
            )
        )


def _installed(b: Bench, module: str) -> bool:
    if importlib.util.find_spec(module) is not None:
        return True
    b.report.note(
        f"delivery: {module} is not installed, so not measured "
        "(pip install -e '.[bench]', as `python3 dev.py bench` does)"
    )
    return False


def _drain_note(b: Bench, peer: dict[str, Any], unit: str = "jobs") -> str:
    note = f"{peer['jobs']:,} {unit} in {peer['seconds']:.1f} s"
    if peer["capped"]:
        note += f", cut at {b.size.peer_cap:.0f} s"
    return note


# PgQueuer's settings tried, the likeliest best first (smoke runs only the first):
# (QueueManagers, each on its own connection; jobs per dequeue).
# (10, 10) is wave 1's fixed setting; fewer managers with larger batches did better here.
PGQUEUER_SWEEP = ((1, 100), (1, 500), (2, 500), (4, 100), (10, 10))
# Sending, a dequeued batch is that many Send API calls in flight (50 ms each).
PGQUEUER_SEND_SWEEP = ((1, 250), (2, 250), (1, 500), (2, 100), (4, 100))


async def _pgqueuer_sweep(b: Bench, sim: Simulator | None = None) -> tuple[str, float | None]:
    """PgQueuer's drain at each setting of its sweep, of no-op jobs or, given `sim`, of
    jobs that each send their email to it; its best setting and rate."""
    if not _installed(b, "pgqueuer"):
        return "", None
    what = "no-op jobs" if sim is None else "each job sends its email (1 message per call)"
    sweep = PGQUEUER_SWEEP if sim is None else PGQUEUER_SEND_SWEEP
    results: list[tuple[str, float]] = []
    for managers, batch in sweep[: b.size.peer_settings]:
        setting = f"{managers} QueueManagers, batch {batch}"
        argv = ["pgqueuer", "--concurrency", str(managers), "--batch-size", str(batch)]
        note = ""
        if sim is not None:
            argv += ["--send", sim.url]
            await sim.reset()
        peer = await _peer(b, argv)
        if sim is not None:
            accepted = (await sim.stats())["accepted_messages"]
            note = f"; simulator accepted {accepted:,}, {peer['failed']} calls failed"
        b.report.add(
            Row(
                "delivery",
                f"PgQueuer sweep: {what}, {setting}",
                peer["rate"],
                "jobs/s",
                note=_drain_note(b, peer) + note,
            )
        )
        results.append((setting, peer["rate"]))
    setting, best = max(results, key=lambda r: r[1])
    b.report.note(
        f"delivery: PgQueuer sweep, {what} (jobs/s): "
        + "; ".join(f"{name}: {value:,.0f}" for name, value in results)
        + f"; best {setting}"
    )
    return setting, best


# post_office's settings tried, the likeliest best first (smoke runs only the first):
# (processes, threads per process, emails per batch).
POST_OFFICE_SWEEP = ((1, 50, 500), (2, 50, 1000), (1, 10, 100), (4, 25, 1000), (1, 100, 1000))


async def _post_office_sweep(b: Bench, sim: Simulator) -> tuple[str, float | None]:
    """post_office sending through anymail to `sim` at each setting; the best one."""
    if not all(_installed(b, m) for m in ("post_office", "anymail", "psycopg")):
        return "", None
    results: list[tuple[str, float]] = []
    for processes, threads, batch in POST_OFFICE_SWEEP[: b.size.peer_settings]:
        setting = f"{processes} proc x {threads} threads, batch {batch}"
        await sim.reset()
        async with infra.fresh_database(b.server, migrate=False) as dsn:
            argv = [sys.executable, "-m", "bench.post_office_peer", "--dsn", dsn]
            argv += ["--mailjet-url", sim.url, "--mailjet-key", SIMULATOR_KEY]
            argv += ["--mailjet-secret", SIMULATOR_SECRET]
            argv += ["--emails", str(b.size.post_office_emails), "--cap", str(b.size.peer_cap)]
            argv += ["--processes", str(processes), "--threads", str(threads)]
            argv += ["--batch-size", str(batch)]
            peer = await _run_peer("post_office", argv)
        accepted = (await sim.stats())["accepted_messages"]
        peer["jobs"] = peer["sent"]
        rate = peer["sent"] / peer["seconds"]
        note = _drain_note(b, peer, "emails") + f"; the simulator accepted {accepted:,}"
        if processes > 1:
            note += (
                f"; parent's psycopg connection broken after {peer['parent_connection_broken']}"
                f" of {peer['batches']} forked batches"
            )
        if peer["error"]:
            note += f"; stopped by {peer['error']}"
        b.report.add(
            Row("delivery", f"post_office sweep: emails, {setting}", rate, "emails/s", note=note)
        )
        if peer["error"] is None and peer["failed"] == 0:
            results.append((setting, rate))
    if not results:
        b.report.note("delivery: post_office failed at every setting (see its rows)")
        return "", None
    setting, best = max(results, key=lambda r: r[1])
    b.report.note(
        "delivery: post_office sweep (emails/s): "
        + "; ".join(f"{name}: {value:,.0f}" for name, value in results)
        + f"; best {setting}"
    )
    return setting, best


async def _simulator_ceiling(b: Bench, sim: Simulator) -> float:
    """Messages per second the simulator accepts in 50-message calls, 32 at a time."""
    auth = {"Authorization": "Basic " + _basic_token(SIMULATOR_KEY, SIMULATOR_SECRET)}
    raws = [
        raw_request(
            sim.port, "POST", "/v3.1/send", send_call_body(i, MAX_RECIPIENTS_PER_CALL), auth
        )
        for i in range(16)
    ]
    result = await b.load.closed(
        sim.port, raws, connections=32, duration=b.size.simulator_probe, warmup=0.5
    )
    return result.count(200) * MAX_RECIPIENTS_PER_CALL / result.seconds


def _basic_token(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


async def _peer(b: Bench, args: list[str]) -> dict[str, Any]:
    """Run one peer's drain (`bench.peers` with `args`) in its own process, on its own
    fresh database."""
    async with infra.fresh_database(b.server, migrate=False) as dsn:
        argv = [sys.executable, "-m", "bench.peers", *args, "--dsn", dsn]
        argv += ["--jobs", str(b.size.peer_jobs), "--cap", str(b.size.peer_cap)]
        data = await _run_peer(args[0], argv)
    data["rate"] = data["jobs"] / data["seconds"]
    return data


async def _run_peer(name: str, argv: list[str]) -> dict[str, Any]:
    """Run a peer's process; its `BENCH_JSON` line."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=infra.ROOT,
        env={**os.environ, "PYTHONPATH": str(infra.ROOT)},
    )
    output, _ = await proc.communicate()
    for line in output.decode(errors="replace").splitlines():
        if line.startswith("BENCH_JSON "):
            data: dict[str, Any] = orjson.loads(line.removeprefix("BENCH_JSON "))
            return data
    raise RuntimeError(f"{name} gave no result:\n{output.decode(errors='replace')[-3000:]}")


_BACKLOG_JOBS = """
INSERT INTO jobs (id, app_id, message, metadata, run_at)
SELECT ('00000000-0000-7000-8000-' || lpad(to_hex(i), 12, '0'))::uuid, $1,
       jsonb_build_object(
           'From', jsonb_build_object('Email', 'noreply@shop.example', 'Name', 'Shop'),
           'To', jsonb_build_array(jsonb_build_object('Email', 'user' || i || '@example.org')),
           'Subject', 'Your order #' || i || ' has shipped',
           'TextPart', 'Hello, your order #' || i || ' is on its way.',
           'HTMLPart', '<p>Hello, your order <b>#' || i || '</b> is on its way.</p>'),
       jsonb_build_object('order', i),
       now() - interval '1 hour' + i * interval '1 microsecond'
FROM generate_series(1, $2) AS i;
"""

_BACKLOG_MESSAGES = """
INSERT INTO messages (job_id, position, app_id, kind, email)
SELECT id, 0, app_id, 'to', message -> 'To' -> 0 ->> 'Email' FROM jobs;
"""


async def backlog(b: Bench) -> None:
    """Time per claim (claim + its recipients) with a small and a large backlog.

    Both backlogs are built first; the claims then alternate between them, so that a slow
    phase of the machine (each claim waits for a WAL flush) weighs on both sizes alike.
    """
    s = b.size
    async with (
        infra.fresh_database(b.server) as small_dsn,
        infra.fresh_database(b.server) as large_dsn,
    ):
        await _build_backlog(small_dsn, s.backlog_small)
        await _build_backlog(large_dsn, s.backlog_large)
        small, large = await _time_claims([small_dsn, large_dsn], s.claims)
    b.report.add(
        Row(
            "backlog",
            f"claim {CLAIM_LIMIT} jobs, {s.backlog_small:,} queued (median)",
            small * 1000,
            "ms",
        )
    )
    b.report.add(
        Row(
            "backlog",
            f"claim {CLAIM_LIMIT} jobs, {s.backlog_large:,} queued (median)",
            large * 1000,
            "ms",
            f"{s.backlog_small:,} queued",
            small * 1000,
            target="<= 1.2x",
            met=large <= 1.2 * small,
        )
    )


async def _build_backlog(dsn: str, jobs: int) -> None:
    """`jobs` due one-recipient jobs, vacuumed and analyzed, and on disk."""
    app_id, _ = await infra.create_app(dsn)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(_BACKLOG_JOBS, app_id, jobs)
        await conn.execute(_BACKLOG_MESSAGES)
        await conn.execute("VACUUM ANALYZE jobs")
        await conn.execute("VACUUM ANALYZE messages")
        # Loading 1M jobs writes ~1.5 GB, which the kernel and the checkpointer would
        # otherwise flush while the claims are timed, slowing their commits' WAL flushes:
        # a cost of building the backlog, not of its size.
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


async def erased(b: Bench) -> None:
    """The claim's check of erased addresses (an HMAC per recipient, in SQL), on three equal
    backlogs claimed in turn: without the key's pads (the branch skipped, as before erasure
    existed); with them, for an app that erased no one (the check stops at the app); and
    for an app with 1,000 erased addresses (an HMAC per recipient)."""
    s = b.size
    key = AddressKey(b"k" * 32)
    async with (
        infra.fresh_database(b.server) as plain_dsn,
        infra.fresh_database(b.server) as other_dsn,
        infra.fresh_database(b.server) as erased_dsn,
    ):
        for dsn in (plain_dsn, other_dsn, erased_dsn):
            await _build_backlog(dsn, s.backlog_small)
        await _erase_some(other_dsn, key, own_app=False)
        await _erase_some(erased_dsn, key, own_app=True)
        plain, other, hashed = await _time_claims(
            [plain_dsn, other_dsn, erased_dsn], s.claims, pads=[None, key.pads(), key.pads()]
        )
    label = f"claim {CLAIM_LIMIT} jobs, {s.backlog_small:,} queued"
    b.report.add(Row("erased", f"{label}, no erased check (median)", plain * 1000, "ms"))
    for what, value in (("app erased no one", other), ("app erased 1,000", hashed)):
        b.report.add(
            Row(
                "erased",
                f"{label}, {what} (median)",
                value * 1000,
                "ms",
                "no erased check",
                plain * 1000,
                target="<= 1.2x",
                met=value <= 1.2 * plain,
            )
        )


async def _erase_some(dsn: str, key: AddressKey, *, own_app: bool) -> None:
    """1,000 erased suppressions, of the backlog's app or of another one."""
    conn = await asyncpg.connect(dsn)
    try:
        app_id = await conn.fetchval("SELECT id FROM apps")
        if not own_app:
            app_id = await conn.fetchval(
                "INSERT INTO apps (id, name) VALUES (gen_random_uuid(), 'other') RETURNING id"
            )
        await conn.execute(
            "INSERT INTO erased_suppressions (app_id, address_hash, reason, created_at) "
            "SELECT $1, h, 'manual', now() FROM unnest($2::bytea[]) h",
            app_id,
            [key.digest(f"erased{n}@example.org") for n in range(1000)],
        )
        await conn.execute("UPDATE apps SET erased_any = true WHERE id = $1", app_id)
        await conn.execute("ANALYZE erased_suppressions")
    finally:
        await conn.close()


async def _time_claims(
    dsns: list[str], claims: int, *, pads: list[tuple[bytes, bytes] | None] | None = None
) -> list[float]:
    """Median seconds of `store.claim` in each database, claiming from each in turn; each
    claim is then recorded as sent, as a worker would, so dead rows pile up the way they
    do in service. `pads`: the erased-address key's, per database (default: none)."""
    pools: list[asyncpg.Pool] = []
    times: list[list[float]] = [[] for _ in dsns]
    keys = pads or [None] * len(dsns)
    try:
        for dsn in dsns:
            pools.append(await create_pool(dsn, min_size=1, max_size=2))
        for _ in range(claims):
            for pool, timed, key in zip(pools, times, keys, strict=True):
                began = time.perf_counter()
                jobs = await store.claim(
                    pool,
                    limit=CLAIM_LIMIT,
                    lease_seconds=120,
                    worker_id="bench",
                    erased_key_pads=key,
                )
                timed.append(time.perf_counter() - began)
                outcome = send.Outcome(
                    accepted=[
                        AcceptedRecipient(j.id, 0, 1_000_000 + n, None, j.app_id)
                        for n, j in enumerate(jobs)
                    ],
                    finished=[send.Finish(j.id, "done") for j in jobs],
                )
                await store.record(pool, outcome, worker_id="bench")
    finally:
        for pool in pools:
            await pool.close()
    return [sorted(timed)[len(timed) // 2] for timed in times]


async def _wait_backlog_below(sim: Simulator, sent: int, limit: int) -> None:
    """Wait until fewer than `limit` of the `sent` emails are still to be sent."""
    while True:
        accepted: int = (await sim.stats())["accepted_messages"]
        if sent - accepted <= limit:
            return
        await asyncio.sleep(0.5)


async def soak(b: Bench) -> None:
    """Many emails through enqueue, send (and events, when Mailer has POST /events): the
    API's and the worker's memory at the checkpoint against the end."""
    s = b.size
    async with b.simulator(latency_ms=0) as sim, infra.fresh_database(b.server) as dsn:
        _, key = await infra.create_app(dsn)
        async with b.api(dsn) as api, b.worker(dsn, sim) as worker:
            await sim.add_callback(
                f"http://{EVENTS_USER}:{EVENTS_PASSWORD}@127.0.0.1:{api.port}/events"
            )
            checkpoint: dict[str, int] = {}
            sent = 0
            url = f"http://127.0.0.1:{api.port}/queue/batch"
            headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
            async with aiohttp.ClientSession() as http:
                while sent < s.soak_emails:
                    count = min(500, s.soak_emails - sent)
                    async with http.post(
                        url, data=batch_body(sent, count), headers=headers
                    ) as response:
                        if response.status != 202:
                            raise RuntimeError(f"soak: batch answered {response.status}")
                    sent += count
                    if not checkpoint:
                        accepted = (await sim.stats())["accepted_messages"]
                        if accepted >= s.soak_checkpoint:
                            checkpoint = {"api": api.rss(), "worker": worker.rss()}
                    if sent % 20_000 == 0:
                        # Keep the backlog bounded: enqueue no more than 50k ahead of sending.
                        await _wait_backlog_below(sim, sent, 50_000)
            await wait_drained(dsn, timeout=900)
            if not checkpoint:
                checkpoint = {"api": api.rss(), "worker": worker.rss()}
            end = {"api": api.rss(), "worker": worker.rss()}
        stats = await sim.stats()
        events = None
        if await infra.fetchval(dsn, "SELECT to_regclass('events') IS NOT NULL"):
            events = int(await infra.fetchval(dsn, "SELECT count(*) FROM events"))
    for name in ("api", "worker"):
        b.report.add(
            Row(
                "soak",
                f"{name} RSS after {s.soak_emails:,} emails",
                end[name] / 2**20,
                "MiB",
                f"at {s.soak_checkpoint:,}",
                checkpoint[name] / 2**20,
                target="<= 1.1x",
                met=end[name] <= 1.1 * checkpoint[name],
            )
        )
    b.report.add(Row("soak", "tracking events stored (posted by the simulator)", events))
    b.report.check(
        "soak: every email sent exactly once",
        stats["accepted_messages"] == s.soak_emails and not stats["duplicates"],
    )
