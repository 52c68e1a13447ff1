"""One Send API call for a pack of claimed jobs, and what its answer means for each job.

The rules (see docs/architecture.md): trust each message's own `Status` whenever the answer
has `Messages`, whatever the HTTP code; a per-message error fails that job at once; 429,
5xx, timeouts and connection errors are retried with backoff; after a timeout or a 5xx the
outcome is unknown, so the next attempt looks the job up at Mailjet before sending again; a
whole-request rejection of several messages is split until the bad message stands alone.
A lookup that finds nothing is repeated once after a grace period (Mailjet's index can lag
behind a fresh send) before the job is sent again.

What a call taught us is an :class:`Outcome` (accepted recipients, rejected ones, jobs that
finished, jobs to retry), which :func:`mailer.delivery.store.record` writes.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from mailer.delivery.batching import AcceptedRecipient, ClaimedJob, build_message, match_accepted
from mailer.delivery.retry import RetryAt, RetryPolicy
from mailer.mailjet import (
    MailjetClient,
    MailjetConnectionError,
    MailjetError,
    MailjetRateLimited,
    MailjetRequestRejected,
    MailjetServerError,
    MailjetTimeout,
    MessageAccepted,
    SendResponse,
)
from mailer.metrics import count

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]

DEFAULT_LOOKUP_GRACE = 30.0
NO_TO_RECIPIENT = "every To recipient is suppressed"
LOOKUP_MISSED = "lookup_missed"
"""`last_error.reason` of a job waiting to be looked up again (read back by the claim)."""


def utcnow() -> datetime:
    """The default clock."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class Retry:
    """A job goes back to the queue for another attempt at `run_at`."""

    job_id: uuid.UUID
    run_at: datetime
    outcome_unknown: bool
    error: dict[str, Any]
    attempted: bool = True
    """False when nothing was sent (a lookup waits for Mailjet's index): no attempt used."""


@dataclass(frozen=True)
class Finish:
    """A job leaves the queue: `done` (Mailjet answered) or `failed` (we gave up)."""

    job_id: uuid.UUID
    state: str
    error: dict[str, Any] | None = None


@dataclass(frozen=True)
class RejectedRecipient:
    """A recipient that will not be sent: Mailjet refused its message, or we gave up."""

    job_id: uuid.UUID
    position: int
    error: dict[str, Any]


@dataclass
class Outcome:
    """Everything one Mailjet call (or lookup) taught us, recorded in one transaction."""

    accepted: list[AcceptedRecipient] = field(default_factory=list)
    rejected: list[RejectedRecipient] = field(default_factory=list)
    finished: list[Finish] = field(default_factory=list)
    retries: list[Retry] = field(default_factory=list)
    suppressed: list[tuple[uuid.UUID, int]] = field(default_factory=list)
    """(job, position) of recipients not sent to for their suppressed address."""

    def merge(self, other: Outcome) -> None:
        """Add another outcome's facts to this one."""
        self.accepted += other.accepted
        self.rejected += other.rejected
        self.finished += other.finished
        self.retries += other.retries
        self.suppressed += other.suppressed


class Sender:
    """Sends packs of jobs through a Mailjet client and turns answers into outcomes."""

    def __init__(
        self,
        client: MailjetClient,
        policy: RetryPolicy,
        *,
        lookup_grace: float = DEFAULT_LOOKUP_GRACE,
        clock: Clock = utcnow,
        rng: random.Random | None = None,
    ) -> None:
        """``lookup_grace``: seconds to wait after a lookup found nothing before looking once
        more and only then resending (0: resend at once)."""
        self._client = client
        self._policy = policy
        self._lookup_grace = lookup_grace
        self._clock = clock
        self._rng = rng or random.Random()

    async def process(self, jobs: Sequence[ClaimedJob]) -> Outcome:
        """Handle a pack: jobs with nothing to send finish, unknown outcomes are looked up
        first, the rest go out in one call."""
        outcome = Outcome()
        to_send: list[ClaimedJob] = []
        for job in jobs:
            outcome.suppressed += [
                (job.id, r.position) for r in job.recipients if r.status == "suppressed"
            ]
            if not job.sendable():
                outcome.finished.append(Finish(job.id, "done"))
            elif not job.has_to_recipient():
                error = {"reason": NO_TO_RECIPIENT}
                outcome.rejected += [
                    RejectedRecipient(job.id, r.position, error) for r in job.sendable()
                ]
                outcome.finished.append(Finish(job.id, "failed", error))
            elif job.needs_lookup:
                found = await self._look_up(job, outcome)
                if found:
                    continue
                if job.lookup_missed or self._lookup_grace <= 0:
                    to_send.append(job)  # not found twice, the grace apart: never got it
                else:
                    outcome.retries.append(self._wait_for_index(job))
            else:
                to_send.append(job)
        if to_send:
            outcome.merge(await self._send(to_send))
        return outcome

    async def _look_up(self, job: ClaimedJob, outcome: Outcome) -> bool:
        """Did an earlier attempt reach Mailjet? If so, record it and don't send again."""
        started = time.perf_counter()
        try:
            found = await self._client.find_messages_by_custom_id(
                job.custom_id, since=job.created_at - timedelta(minutes=5)
            )
        except MailjetError as exc:
            count.lookup("error", time.perf_counter() - started)
            outcome.merge(self._retry_or_give_up([job], exc, outcome_unknown=True))
            return True
        count.lookup("found" if found else "not_found", time.perf_counter() - started)
        if not found:
            return False
        entries = [(m.email or "", None, m.message_id, None) for m in found]
        outcome.accepted += match_accepted(job, entries)
        outcome.finished.append(Finish(job.id, "done"))
        log.info("send found at Mailjet, not repeated", extra={"action": "lookup_found"})
        return True

    def _wait_for_index(self, job: ClaimedJob) -> Retry:
        """Not found: Mailjet's index can lag behind a fresh send, so look again after the
        grace period before resending (the retry keeps `needs_lookup`, uses no attempt)."""
        log.info(
            "send not found at Mailjet yet; looking again before resending",
            extra={"action": "lookup_missed", "job_id": str(job.id), "grace": self._lookup_grace},
        )
        run_at = self._clock() + timedelta(seconds=self._lookup_grace)
        return Retry(job.id, run_at, True, {"reason": LOOKUP_MISSED}, attempted=False)

    async def _send(self, jobs: Sequence[ClaimedJob]) -> Outcome:
        messages = [build_message(job) for job in jobs]
        started = time.perf_counter()
        try:
            response = await self._client.send(messages)
        except MailjetError as exc:
            count.mailjet_call(call_outcome(exc), time.perf_counter() - started)
            return await self._send_failed(jobs, exc)
        count.mailjet_call(answer_outcome(response), time.perf_counter() - started)
        return self._answered(jobs, response)

    async def _send_failed(self, jobs: Sequence[ClaimedJob], exc: MailjetError) -> Outcome:
        """What a call that raised means for its jobs."""
        if not isinstance(exc, MailjetRequestRejected):
            return self._retry_or_give_up(jobs, exc, outcome_unknown=exc.outcome_unknown)
        if len(jobs) > 1:
            # Nothing of a rejected request was sent: halve it to find the bad message.
            half = len(jobs) // 2
            first = await self._send(jobs[:half])
            first.merge(await self._send(jobs[half:]))
            return first
        if exc.status in (401, 403):
            # Our credentials, not this email: keep it and retry later.
            log.error("Mailjet refused our credentials", extra={"action": "mailjet_auth"})
            return self._retry_or_give_up(jobs, exc, outcome_unknown=False)
        return self._fail(jobs[0], _error_of(exc))

    def _answered(self, jobs: Sequence[ClaimedJob], response: SendResponse) -> Outcome:
        """What an answer with one result per message means for its jobs."""
        outcome = Outcome()
        for job, result in zip(jobs, response.results, strict=False):
            if isinstance(result, MessageAccepted):
                entries = [
                    (r.email, r.kind, r.message_id, r.message_uuid) for r in result.recipients
                ]
                outcome.accepted += match_accepted(job, entries)
                outcome.finished.append(Finish(job.id, "done"))
            else:
                error = {
                    "http_status": response.http_status,
                    "errors": [
                        {
                            "code": e.code,
                            "message": e.message,
                            "related_to": e.related_to,
                            "status_code": e.status_code,
                            "identifier": e.identifier,
                        }
                        for e in result.errors
                    ],
                }
                outcome.merge(self._fail(job, error))
        if len(response.results) < len(jobs):
            missing = jobs[len(response.results) :]
            error = {"reason": "Mailjet's answer had fewer messages than the request"}
            outcome.merge(self._retry_or_give_up(missing, error, outcome_unknown=True))
        return outcome

    def _fail(self, job: ClaimedJob, error: dict[str, Any]) -> Outcome:
        return Outcome(
            rejected=[RejectedRecipient(job.id, r.position, error) for r in job.sendable()],
            finished=[Finish(job.id, "failed", error)],
        )

    def _retry_or_give_up(
        self,
        jobs: Sequence[ClaimedJob],
        cause: MailjetError | dict[str, Any],
        *,
        outcome_unknown: bool,
    ) -> Outcome:
        error = _error_of(cause) if isinstance(cause, MailjetError) else cause
        retry_after = getattr(cause, "retry_after", None)
        now = self._clock()
        outcome = Outcome()
        for job in jobs:
            decision = self._policy.decide(
                attempts_made=job.attempts,
                first_queued_at=job.retried_at or job.created_at,
                now=now,
                retry_after=retry_after,
                rng=self._rng,
            )
            if isinstance(decision, RetryAt):
                outcome.retries.append(Retry(job.id, decision.at, outcome_unknown, error))
            else:
                gave_up = {**error, "gave_up": decision.reason}
                outcome.merge(self._fail(job, gave_up))
        return outcome


def call_outcome(exc: MailjetError) -> str:
    """The metric outcome of a Send API call that raised `exc`."""
    if isinstance(exc, MailjetRequestRejected):
        return "401_403" if exc.status in (401, 403) else "4xx"
    if isinstance(exc, MailjetRateLimited):
        return "429"
    if isinstance(exc, MailjetServerError):
        return "5xx"
    if isinstance(exc, MailjetTimeout):
        return "timeout"
    if isinstance(exc, MailjetConnectionError):
        return "connection"
    return "unexpected"


def answer_outcome(response: SendResponse) -> str:
    """The metric outcome of a Send API answer with per-message results."""
    accepted = sum(isinstance(r, MessageAccepted) for r in response.results)
    if accepted == len(response.results):
        return "success"
    return "partial" if accepted else "4xx"


def _error_of(exc: MailjetError) -> dict[str, Any]:
    error = {"error": type(exc).__name__, "status": exc.status, "detail": exc.detail}
    if exc.identifier is not None:
        error["identifier"] = exc.identifier
    return error
