"""Recording a Send API call's results (`delivery.store.record`) against the real PostgreSQL:
the common case in one statement, and no event that waited for a MessageID left behind."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from mailer.db.pool import Conn, connect
from mailer.db.queries import Queries
from mailer.delivery import send, store
from mailer.delivery.batching import AcceptedRecipient
from mailer.delivery.email import EmailRequest
from mailer.delivery.enqueue import insert_jobs, new_job
from mailer.tracking.precedence import STATUS_RANK, RecipientStatus

Q = Queries("mailer.delivery")
MESSAGE_ID = 1_152_921_504_606_846_999


async def _claimed_job(pool: asyncpg.Pool, *to: str) -> uuid.UUID:
    app_id = uuid.uuid4()
    await pool.execute("INSERT INTO apps (id, name) VALUES ($1, $2)", app_id, str(app_id))
    body = {
        "from": {"email": "noreply@shop.example"},
        "to": [{"email": address} for address in to or ["ann@example.org"]],
        "subject": "Hi",
        "text": "Hello",
    }
    job = new_job(app_id, EmailRequest.model_validate(body))
    async with pool.acquire() as conn:
        await insert_jobs(conn, [job])
    [claimed] = await store.claim(pool, limit=10, lease_seconds=60, worker_id="test")
    return claimed.id


async def _insert_pending_open(
    conn: Conn, *, message_id: int = MESSAGE_ID, custom_job_id: uuid.UUID | None = None
) -> int:
    """An unlinked open event for ann@example.org: by default for MESSAGE_ID, without a
    CustomID, so it waits for the send result."""
    event_id: int = await conn.fetchval(
        """
        INSERT INTO events (post_id, dedupe_key, type, understood, status, rank, occurred_at,
                            time_estimated, message_id, email, is_test, details, raw,
                            custom_job_id)
        VALUES (0, $1, 'open', true, 'opened', $2, now(), false, $3, 'ann@example.org',
                false, '{}', '{}', $4)
        RETURNING id
        """,
        uuid.uuid4().bytes,
        STATUS_RANK[RecipientStatus.OPENED],
        message_id,
        custom_job_id,
    )
    return event_id


def _sent(job_id: uuid.UUID) -> send.Outcome:
    return send.Outcome(
        accepted=[AcceptedRecipient(job_id, 0, MESSAGE_ID, "uuid-1")],
        finished=[send.Finish(job_id, "done")],
    )


async def _state(pool: asyncpg.Pool, job_id: uuid.UUID) -> tuple[str, str, int | None]:
    row = await pool.fetchrow(
        "SELECT j.state, m.status, m.message_id FROM jobs j JOIN messages m ON m.job_id = j.id "
        "WHERE j.id = $1",
        job_id,
    )
    assert row is not None
    return row["state"], row["status"], row["message_id"]


async def _linked_job(pool: asyncpg.Pool, event_id: int) -> uuid.UUID | None:
    job_id: uuid.UUID | None = await pool.fetchval(
        "SELECT job_id FROM events WHERE id = $1", event_id
    )
    return job_id


async def test_a_sent_call_is_recorded(pool: asyncpg.Pool) -> None:
    job_id = await _claimed_job(pool)
    await store.record(pool, _sent(job_id), worker_id="test")
    assert await _state(pool, job_id) == ("done", "accepted", MESSAGE_ID)


async def test_a_call_with_nothing_to_send_finishes_its_job(pool: asyncpg.Pool) -> None:
    job_id = await _claimed_job(pool)
    outcome = send.Outcome(finished=[send.Finish(job_id, "done")])
    await store.record(pool, outcome, worker_id="test")
    assert await _state(pool, job_id) == ("done", "queued", None)


async def test_the_one_statement_writes_nothing_while_an_event_waits(pool: asyncpg.Pool) -> None:
    by_message_id = await _claimed_job(pool)
    async with pool.acquire() as conn:
        await _insert_pending_open(conn)
    sends = ([by_message_id], [0], [MESSAGE_ID], ["uuid-1"], [by_message_id], ["done"], [None])
    assert await pool.fetchval(Q.record_sends, *sends, True, [None], [], []) is False
    assert await _state(pool, by_message_id) == ("sending", "queued", None)

    # An unlinked event naming the job as its CustomID (for another address, say) may
    # link by CustomID and address once the result is in: the same.
    by_custom_id = await _claimed_job(pool, "bob@example.org")
    async with pool.acquire() as conn:
        await _insert_pending_open(conn, message_id=7, custom_job_id=by_custom_id)
    other = MESSAGE_ID + 1
    sends = ([by_custom_id], [0], [other], ["uuid-2"], [by_custom_id], ["done"], [None])
    assert await pool.fetchval(Q.record_sends, *sends, True, [None], [], []) is False
    assert await _state(pool, by_custom_id) == ("sending", "queued", None)


async def test_accepted_rejected_and_retried_in_one_outcome(pool: asyncpg.Pool) -> None:
    sent = await _claimed_job(pool, "ann@example.org", "bob@example.org")
    again = await _claimed_job(pool)
    error = {"reason": "refused"}
    later = datetime.now(UTC) + timedelta(minutes=5)
    outcome = send.Outcome(
        accepted=[AcceptedRecipient(sent, 0, MESSAGE_ID, "uuid-1")],
        rejected=[send.RejectedRecipient(sent, 1, error)],
        finished=[send.Finish(sent, "done")],
        retries=[send.Retry(again, later, outcome_unknown=True, error=error)],
    )
    await store.record(pool, outcome, worker_id="test")
    rows = await pool.fetch(
        "SELECT status, message_id, error FROM messages WHERE job_id = $1 ORDER BY position",
        sent,
    )
    assert [(r["status"], r["message_id"], r["error"]) for r in rows] == [
        ("accepted", MESSAGE_ID, None),
        ("failed", None, error),
    ]
    assert (await _state(pool, sent))[0] == "done"
    job = await pool.fetchrow("SELECT state, run_at, needs_lookup FROM jobs WHERE id = $1", again)
    assert job is not None
    assert (job["state"], job["run_at"], job["needs_lookup"]) == ("queued", later, True)


async def test_an_event_that_waited_is_linked_and_applied(pool: asyncpg.Pool) -> None:
    job_id = await _claimed_job(pool)
    async with pool.acquire() as conn:
        event_id = await _insert_pending_open(conn)
    await store.record(pool, _sent(job_id), worker_id="test")
    assert await _linked_job(pool, event_id) == job_id
    assert await _state(pool, job_id) == ("done", "opened", MESSAGE_ID)


async def test_an_event_inserted_while_recording_waits_is_not_left_behind(
    pool: asyncpg.Pool, db_dsn: str
) -> None:
    # The event's inserter holds the MessageID's bucket (its retry found no message with
    # that MessageID); the recording waits for it, then must see the event it committed.
    job_id = await _claimed_job(pool)
    inserter = await connect(db_dsn)
    try:
        async with inserter.transaction():
            event_id = await _insert_pending_open(inserter)
            await inserter.execute("SELECT lock_message_id_buckets($1, true)", [MESSAGE_ID])
            recording = asyncio.create_task(store.record(pool, _sent(job_id), worker_id="test"))
            await asyncio.sleep(0.3)
            assert not recording.done()  # waiting for the bucket
        await asyncio.wait_for(recording, 5)
    finally:
        await inserter.close()
    assert await _linked_job(pool, event_id) == job_id
    assert await _state(pool, job_id) == ("done", "opened", MESSAGE_ID)


async def test_recording_survives_a_deadlock_with_an_event_intake(
    pool: asyncpg.Pool, db_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    # An intake applies an event to the message (its row), then takes the MessageID's
    # bucket for another event; the recording holds the bucket and waits for the row.
    # PostgreSQL aborts the one that has waited longest, the recording: it must run again.
    caplog.set_level(logging.INFO, logger="mailer.db.conflicts")
    job_id = await _claimed_job(pool)
    intake = await connect(db_dsn)
    try:
        async with intake.transaction():
            await intake.execute("UPDATE messages SET updated_at = now() WHERE job_id = $1", job_id)
            recording = asyncio.create_task(store.record(pool, _sent(job_id), worker_id="test"))
            await asyncio.sleep(0.3)  # holding the bucket, waiting for the row
            await intake.execute("SELECT lock_message_id_buckets($1, true)", [MESSAGE_ID])
        await asyncio.wait_for(recording, 10)
    finally:
        await intake.close()
    assert await _state(pool, job_id) == ("done", "accepted", MESSAGE_ID)
    retries = [r for r in caplog.records if getattr(r, "action", None) == "record_retry"]
    assert [getattr(r, "error", None) for r in retries] == ["DeadlockDetectedError"]
