"""The status rules, as they run: random Mailjet event sequences through the real intake
and recording, on PostgreSQL.

The precedence is applied in SQL (`apply_events`, `record_sends`); there is no Python copy
of it to test instead. Each example makes two one-recipient jobs and feeds both the same
events: one in order, one shuffled, with duplicates, in several bodies, and possibly
before its send result is recorded (the events then wait, unlinked, and are linked when the
send is recorded). The invariants: a status never moves backward, the outcome does not
depend on order, duplicates or timing, posting everything again changes nothing, and the
outcome is the most advanced status observed.
"""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import asyncpg
import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailer.delivery import send, store
from mailer.delivery.batching import AcceptedRecipient
from mailer.delivery.email import EmailRequest
from mailer.delivery.enqueue import insert_jobs, new_job
from mailer.tracking.intake import store_callback
from mailer.tracking.precedence import STATUS_RANK, EventType, RecipientStatus, status_for_event

T0 = 1_750_000_000
_ids = itertools.count(1)

# (event type, extra fields): every kind of event that moves a status, soft and hard.
EVENTS: list[tuple[str, dict[str, Any]]] = [
    ("sent", {}),
    ("open", {"agent": "Mozilla/5.0"}),
    ("click", {"url": "https://shop.example/a"}),
    ("bounce", {"hard_bounce": True, "error_related_to": "recipient", "error": "user unknown"}),
    ("bounce", {"hard_bounce": False, "error_related_to": "domain", "error": "timeout"}),
    ("spam", {"source": "JMRPP"}),
    ("blocked", {"error_related_to": "recipient", "error": "preblocked"}),
    ("blocked", {"error_related_to": "content", "error": "spam content"}),
    ("unsub", {"mj_list_id": 0}),
]

sequences = st.lists(st.sampled_from(range(len(EVENTS))), min_size=1, max_size=7)


async def _claimed_job(pool: asyncpg.Pool, app_id: uuid.UUID, address: str) -> uuid.UUID:
    body = {
        "from": {"email": "noreply@shop.example"},
        "to": [{"email": address}],
        "subject": "Hi",
        "text": "Hello",
    }
    job = new_job(app_id, EmailRequest.model_validate(body))
    async with pool.acquire() as conn:
        await insert_jobs(conn, [job])
    await store.claim(pool, limit=10, lease_seconds=60, worker_id="test")
    return job.id


async def _record_sent(pool: asyncpg.Pool, job_id: uuid.UUID, message_id: int) -> None:
    outcome = send.Outcome(
        accepted=[AcceptedRecipient(job_id, 0, message_id, f"uuid-{message_id}")],
        finished=[send.Finish(job_id, "done")],
    )
    await store.record(pool, outcome, worker_id="test")


def _event(
    index: int, at: int, message_id: int, address: str, job_id: uuid.UUID, custom_id: bool
) -> dict[str, Any]:
    kind, fields = EVENTS[index]
    return {
        "event": kind,
        "time": at,
        "MessageID": message_id,
        "email": address,
        "CustomID": str(job_id) if custom_id else "",
        **fields,
    }


async def _status(pool: asyncpg.Pool, job_id: uuid.UUID) -> RecipientStatus:
    return RecipientStatus(
        await pool.fetchval("SELECT status FROM messages WHERE job_id = $1", job_id)
    )


async def _event_count(pool: asyncpg.Pool, job_id: uuid.UUID) -> int:
    count: int = await pool.fetchval("SELECT count(*) FROM events WHERE job_id = $1", job_id)
    return count


async def _post(pool: asyncpg.Pool, events: list[dict[str, Any]]) -> None:
    await store_callback(pool, orjson.dumps(events))


def _rank(status: RecipientStatus) -> int:
    return STATUS_RANK[status]


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    order=sequences,
    data=st.data(),
    body_size=st.integers(min_value=1, max_value=3),
    early=st.integers(min_value=0, max_value=7),
    custom_id=st.booleans(),
)
async def test_status_rules_hold_for_any_event_sequence(
    pool: asyncpg.Pool,
    order: list[int],
    data: st.DataObject,
    body_size: int,
    early: int,
    custom_id: bool,
) -> None:
    n = next(_ids)
    app_id = uuid.uuid4()
    await pool.execute("INSERT INTO apps (id, name) VALUES ($1, $2)", app_id, f"app-{n}")
    address_a, address_b = f"a{n}@example.org", f"b{n}@example.org"
    job_a = await _claimed_job(pool, app_id, address_a)
    job_b = await _claimed_job(pool, app_id, address_b)
    mid_a, mid_b = 10**17 + 2 * n, 10**17 + 2 * n + 1

    # Job A: the send is recorded, then each event arrives alone, in order.
    await _record_sent(pool, job_a, mid_a)
    events_a = [_event(i, T0 + t, mid_a, address_a, job_a, True) for t, i in enumerate(order)]
    seen = await _status(pool, job_a)
    assert seen is RecipientStatus.ACCEPTED
    for event in events_a:
        await _post(pool, [event])
        now = await _status(pool, job_a)
        assert _rank(now) >= _rank(seen), (seen, now, event)  # never backward
        seen = now

    # Job B: the same events, shuffled, some repeated, grouped in bodies; the first `early`
    # of them arrive before the send result is recorded.
    events_b = [_event(i, T0 + t, mid_b, address_b, job_b, custom_id) for t, i in enumerate(order)]
    shuffled = data.draw(st.permutations(events_b))
    repeats = data.draw(st.lists(st.sampled_from(events_b), max_size=4))
    arrivals = shuffled + repeats
    split = min(early, len(arrivals))
    before, after = arrivals[:split], arrivals[split:]
    for start in range(0, len(before), body_size):
        await _post(pool, before[start : start + body_size])
    await _record_sent(pool, job_b, mid_b)
    for start in range(0, len(after), body_size):
        await _post(pool, after[start : start + body_size])

    final_a, final_b = await _status(pool, job_a), await _status(pool, job_b)
    assert final_a is final_b  # independent of order, duplicates and early arrival
    assert await _event_count(pool, job_b) == await _event_count(pool, job_a) == len(order)

    # The outcome is the most advanced status observed (the send's `accepted` included).
    observed = [RecipientStatus.ACCEPTED] + [
        status_for_event(EventType(e["event"]), hard_bounce=e.get("hard_bounce")) for e in events_a
    ]
    assert final_a is max(observed, key=_rank)

    # Idempotent: everything posted again changes nothing.
    await _post(pool, events_a + events_b)
    assert await _status(pool, job_a) is final_a and await _status(pool, job_b) is final_b
    assert await _event_count(pool, job_a) == len(order)


async def test_our_own_verdicts_do_not_override_mailjet(pool: asyncpg.Pool) -> None:
    # A send that timed out and was given up on (`failed`), yet Mailjet had it: its events
    # win over our verdict, and recording `accepted` later never lowers an event's status.
    app_id = uuid.uuid4()
    await pool.execute("INSERT INTO apps (id, name) VALUES ($1, 'verdicts')", app_id)
    job = await _claimed_job(pool, app_id, "ann@example.org")
    outcome = send.Outcome(
        rejected=[send.RejectedRecipient(job, 0, {"reason": "gave up"})],
        finished=[send.Finish(job, "failed", {"reason": "gave up"})],
    )
    await store.record(pool, outcome, worker_id="test")
    assert await _status(pool, job) is RecipientStatus.FAILED
    mid = 10**17 - 1
    await _post(pool, [_event(1, T0, mid, "ann@example.org", job, True)])  # an open
    assert await _status(pool, job) is RecipientStatus.OPENED
    await _record_sent(pool, job, mid)  # found by CustomID later
    assert await _status(pool, job) is RecipientStatus.OPENED
