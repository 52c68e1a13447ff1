"""The send worker: claim due jobs, send them in packs through Mailjet, record the results.

Never a transaction across an HTTP call: the claim commits, the call runs, the result is
written in a second short transaction (shared with the calls that finished at the same
time). The claiming, pacing, waking and draining are the queue core's
(:class:`mailer.queue.loop.ClaimLoop`): several calls are in flight at once and as many
wait claimed behind them, so one claim serves many calls. SIGTERM (via `stop()`) drains:
calls in flight finish and are recorded, claims not yet started are given back.
"""

from __future__ import annotations

import logging
import os
import socket
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import partial

import asyncpg

from mailer.db.coalesce import Coalescer
from mailer.delivery import limits, store
from mailer.delivery.batching import MAX_RECIPIENTS_PER_CALL, ClaimedJob, pack
from mailer.delivery.pacing import MailjetPace, wait_for_slot
from mailer.delivery.send import Outcome, Sender
from mailer.ids import uuid7
from mailer.metrics import count
from mailer.ops.activity import ACTIVITY
from mailer.ops.event_clock import SENDS
from mailer.queue.loop import Claim, ClaimLoop, LoopOptions, Work, claiming_ahead
from mailer.queue.wakeup import Signal

log = logging.getLogger(__name__)

JOBS_CHANNEL = "mailer_jobs"
"""The LISTEN/NOTIFY channel an enqueue notifies (in its SQL), which wakes workers."""


DEFAULT_PACING = claiming_ahead(16, lease_seconds=120.0)
"""16 Mailjet calls in flight, 16 more claimed behind them; a claim lasts 2 minutes."""


class Worker:
    """One worker process's send loop (several may run against one database).

    ``erased_key_pads``: the HMAC pads of the key erased addresses are hashed with
    (:mod:`mailer.lifecycle.address_key`), so that their suppressions still hold.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        sender: Sender,
        signal: Signal | None,
        pacing: LoopOptions = DEFAULT_PACING,
        *,
        claim_batch: int = 500,
        erased_key_pads: tuple[bytes, bytes] | None = None,
        mailjet_pace: MailjetPace | None = None,
    ) -> None:
        self._pool = pool
        self._erased_key_pads = erased_key_pads
        self._sender = sender
        self._lease_seconds = pacing.lease_seconds
        self._claim_batch = claim_batch
        self._pace = mailjet_pace
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid7().hex[-8:]}"
        self._recorder = Recorder(pool, self.worker_id)
        self.loop = ClaimLoop(
            "jobs",
            claim=self._claim,
            next_due=lambda: store.next_due(pool),
            recover=self._recover,
            signal=signal,
            options=pacing,
        )

    async def start(self) -> None:
        """Start claiming and sending in the background."""
        await self._recorder.start()
        ACTIVITY.declare(["emails_sent", "emails_failed"])
        self.loop.start()
        log.info("worker started", extra={"action": "worker_started", "worker": self.worker_id})

    async def stop(self) -> None:
        """Drain: stop claiming, let calls in flight finish and record, release the rest."""
        await self.loop.stop()
        await self._recorder.stop()
        log.info("worker stopped", extra={"action": "worker_stopped", "worker": self.worker_id})

    async def _claim(self, places: int) -> Claim:
        """Claim jobs for up to `places` calls, packed into calls of 50 recipients at most;
        under an account ceiling, each call gets its booked start time."""
        if self._pace is not None:
            places = min(places, self._pace.most_calls(self._lease_seconds))
        limit = min(self._claim_batch, places * MAX_RECIPIENTS_PER_CALL)
        jobs = await store.claim(
            self._pool,
            limit=limit,
            lease_seconds=self._lease_seconds,
            worker_id=self.worker_id,
            erased_key_pads=self._erased_key_pads,
        )
        calls = pack(jobs)
        if self._pace is None:
            runs = [partial(self._send, call) for call in calls]
        else:
            try:
                starts = await self._pace.book(len(calls))
            except Exception:
                await self._release(jobs)  # not stranded until their lease ends
                raise
            runs = [partial(self._send_at, c, s) for c, s in zip(calls, starts, strict=True)]
        work = [
            Work(run=run, give_back=partial(self._release, call))
            for run, call in zip(runs, calls, strict=True)
        ]
        return Claim(work, full=len(jobs) == limit)

    async def _recover(self) -> int:
        """Requeue jobs whose worker died; put back held jobs whose app was resumed."""
        await limits.release_held(self._pool)
        return await store.recover_expired(self._pool)

    async def _send_at(self, jobs: Sequence[ClaimedJob], start: float) -> None:
        await wait_for_slot(start)
        await self._send(jobs)

    async def _send(self, jobs: Sequence[ClaimedJob]) -> None:
        try:
            outcome = await self._sender.process(jobs)
            answered_at = datetime.now(UTC)
            await self._recorder.record(outcome)
            ACTIVITY.add("emails_sent", len(outcome.accepted))
            if outcome.accepted:
                SENDS.note()
            ACTIVITY.add("emails_failed", len(outcome.rejected))
            count_recorded(jobs, outcome, answered_at)
        except Exception:
            # The lease will expire and the jobs be looked up, then retried: not lost.
            log.exception("recording a send failed", extra={"action": "record_failed"})

    async def _release(self, jobs: Sequence[ClaimedJob]) -> None:
        await store.release(self._pool, [j.id for j in jobs], worker_id=self.worker_id)


def count_recorded(jobs: Sequence[ClaimedJob], outcome: Outcome, answered_at: datetime) -> None:
    """The metrics of a recorded outcome: recipients by app, jobs finished, and for each job
    Mailjet accepted the time from its enqueue to `answered_at`.

    Ids are compared by their `.int`: a UUID's own hash is Python code, and this runs for
    every email sent."""
    if not count.enabled():
        return
    apps = {job.app_id.int for job in jobs}
    if len(apps) == 1:  # the common case: one app's emails in the call
        count.recipients(jobs[0].app_id, "accepted", len(outcome.accepted))
        count.recipients(jobs[0].app_id, "failed", len(outcome.rejected))
    else:
        app_of = {job.id.int: job.app_id for job in jobs}
        for (app, result), n in Counter(
            [(app_of[a.job_id.int], "accepted") for a in outcome.accepted]
            + [(app_of[r.job_id.int], "failed") for r in outcome.rejected]
        ).items():
            count.recipients(app, result, n)
    for state, n in Counter(f.state for f in outcome.finished).items():
        count.jobs_finished(state, n)
    accepted = {a.job_id.int for a in outcome.accepted}
    count.send_latencies(
        [(answered_at - job.created_at).total_seconds() for job in jobs if job.id.int in accepted]
    )


class Recorder:
    """Records the outcomes of calls that finish together in one transaction (group commit),
    so a busy worker commits once per handful of calls, not once per call."""

    def __init__(self, pool: asyncpg.Pool, worker_id: str, *, writers: int = 2) -> None:
        self._pool = pool
        self._worker_id = worker_id
        # Both writers start at once (`spare_after=0`): a call keeps its send slot until its
        # outcome is recorded, so recording favours promptness over larger groups.
        self._coalescer: Coalescer[Outcome, None] = Coalescer(
            self._record_many, writers=writers, spare_after=0.0
        )

    async def start(self) -> None:
        """Start the writers."""
        await self._coalescer.start()

    async def stop(self) -> None:
        """Write what is pending, then stop the writers."""
        await self._coalescer.stop()

    async def record(self, outcome: Outcome) -> None:
        """Write one call's outcome; returns once it is committed."""
        await self._coalescer.submit(outcome)

    async def _record_many(self, outcomes: Sequence[Outcome]) -> list[None]:
        merged = Outcome()
        for outcome in outcomes:
            merged.merge(outcome)
        await store.record(self._pool, merged, worker_id=self._worker_id)
        return [None] * len(outcomes)
