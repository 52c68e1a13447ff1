"""Counting into the metrics: one call per fact, cheap on the hot paths.

Children with fixed labels are bound once at import; those labelled by app, route or type
are bound on first use and kept in a dict, so counting is a dict lookup and an increment.
What runs once per HTTP request is only added to a dict, and written to the metrics by
:func:`flush` (before each scrape, and every second). With ``MAILER_METRICS=off``
(:func:`set_enabled`) every function returns at once.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from bisect import bisect_left
from collections import Counter as Tally
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from mailer.aio import cancel_and_wait
from mailer.metrics import families as f

_enabled = True


def set_enabled(enabled: bool) -> None:
    """Turn counting on or off for this process (``MAILER_METRICS``)."""
    global _enabled
    _enabled = enabled


def enabled() -> bool:
    """Whether this process counts."""
    return _enabled


_enqueued: dict[tuple[uuid.UUID, str], Any] = {}
_recipients: dict[tuple[uuid.UUID, str], Any] = {}
_events: dict[tuple[str | None, str, int], Any] = {}
_calls = {outcome: f.MAILJET_CALLS.labels(outcome) for outcome in f.MAILJET_CALL_OUTCOMES}
_lookups = {result: f.MAILJET_LOOKUPS.labels(result) for result in f.LOOKUP_RESULTS}
_webhooks = {outcome: f.WEBHOOK_DELIVERIES.labels(outcome) for outcome in f.WEBHOOK_OUTCOMES}
_send_duration = f.MAILJET_DURATION.labels("send")
_lookup_duration = f.MAILJET_DURATION.labels("lookup")
_finished = {state: f.JOBS_FINISHED.labels(state) for state in ("done", "failed")}


# What runs once per HTTP request is buffered: a dict increment per request, written to
# prometheus_client (locks, and in multiprocess mode the mapped file) by `flush`, which
# runs before every scrape and every second (`Flusher`).
_enqueued_pending: Tally[tuple[int, str]] = Tally()
_app_ids: dict[int, uuid.UUID] = {}
_http_pending: Tally[tuple[str, str, int]] = Tally()
_durations_pending: dict[str, list[float]] = {}


def enqueued(app_id: uuid.UUID, outcome: str, n: int = 1) -> None:
    """`n` emails of an app answered with `outcome` (accepted, replayed, rejected)."""
    if _enabled and n > 0:
        _enqueued_pending[(app_id.int, outcome)] += n
        if app_id.int not in _app_ids:
            _app_ids[app_id.int] = app_id


UNMATCHED = "unmatched"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def http_answer(scope: Mapping[str, Any], status: int, seconds: float) -> None:
    """One HTTP request answered: counted by its route's template (`/status/{job_id}`,
    never the raw path; `unmatched` when no route took it), method and status."""
    if not _enabled:
        return
    route = getattr(scope.get("route"), "path", None) or UNMATCHED
    method = scope["method"] if scope["method"] in _METHODS else "other"
    _http_pending[(route, method, status)] += 1
    durations = _durations_pending.get(route)
    if durations is None:
        _durations_pending[route] = [seconds]
    else:
        durations.append(seconds)


def flush() -> None:
    """Write the buffered per-request counts to the metrics."""
    if _enqueued_pending:
        for (app, outcome), n in _enqueued_pending.items():
            key = (_app_ids[app], outcome)
            child = _enqueued.get(key)
            if child is None:
                child = _enqueued[key] = f.EMAILS_ENQUEUED.labels(str(key[0]), outcome)
            child.inc(n)
        _enqueued_pending.clear()
    if _http_pending:
        for (route, method, status), n in _http_pending.items():
            f.HTTP_REQUESTS.labels(route, method, str(status)).inc(n)
        _http_pending.clear()
    if _durations_pending:
        for route, durations in _durations_pending.items():
            observe_many(f.HTTP_DURATION.labels(route), durations)
        _durations_pending.clear()


class Flusher:
    """Runs `flush` every `interval` seconds while started, and once when stopped."""

    def __init__(self, interval: float = 1.0) -> None:
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start flushing in the background."""
        if self._task is None:
            self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        """Stop, flushing what is buffered."""
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None
        flush()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            flush()


def mailjet_call(outcome: str, seconds: float) -> None:
    """One Send API call, and what its answer meant (`MAILJET_CALL_OUTCOMES`)."""
    if not _enabled:
        return
    _calls[outcome].inc()
    _send_duration.observe(seconds)


def lookup(result: str, seconds: float) -> None:
    """One lookup by CustomID before a resend (`LOOKUP_RESULTS`)."""
    if not _enabled:
        return
    _lookups[result].inc()
    _lookup_duration.observe(seconds)


def recipients(app_id: uuid.UUID, result: str, n: int) -> None:
    """`n` recipients of an app accepted by Mailjet, or failed for good (`result`)."""
    if not _enabled or n <= 0:
        return
    key = (app_id, result)
    child = _recipients.get(key)
    if child is None:
        child = _recipients[key] = f.RECIPIENTS_SENT.labels(str(app_id), result)
    child.inc(n)


def jobs_finished(state: str, n: int) -> None:
    """`n` jobs left the queue in `state` (done, failed)."""
    if _enabled and n > 0:
        _finished[state].inc(n)


def send_latencies(seconds: Sequence[float]) -> None:
    """Enqueue-to-accept times of jobs Mailjet just accepted (a call's 50 at once)."""
    if _enabled and seconds:
        observe_many(f.SEND_LATENCY, seconds)


def observe_many(histogram: Any, values: Sequence[float]) -> None:
    """`histogram.observe(v)` for each of `values`, with one increment per bucket hit
    instead of one per value: a worker observes 50 latencies per Mailjet call, and
    prometheus_client's `observe` costs ~1 µs each (locks, and in multiprocess mode a
    write to the mapped file). Reads the child's buckets as `observe` does; a test checks
    that both give the same samples."""
    bounds: list[float] | None = getattr(histogram, "_upper_bounds", None)
    buckets: list[Any] | None = getattr(histogram, "_buckets", None)
    total: Any = getattr(histogram, "_sum", None)
    if bounds is None or buckets is None or total is None:  # not the layout we know
        for value in values:
            histogram.observe(value)
        return
    hits = [0] * len(bounds)
    for value in values:
        hits[bisect_left(bounds, value)] += 1  # the first bucket with value <= bound
    for index, n in enumerate(hits):
        if n:
            buckets[index].inc(n)
    total.inc(sum(values))


def event_type(value: str | None) -> str:
    """The label of an event type: a Mailjet type, or "other"."""
    return value if value in f.EVENT_TYPES else f.OTHER


def events(tally: Tally[tuple[str | None, str, int]]) -> None:
    """Mailjet events by (type, outcome, app's `.int` or 0 when not linked), once they are
    committed. The type becomes its label (a Mailjet type or "other") here, once per key."""
    if not _enabled:
        return
    for key, n in tally.items():
        child = _events.get(key)
        if child is None:
            kind, outcome, app = key
            label = "" if not app else str(uuid.UUID(int=app))
            child = _events[key] = f.MAILJET_EVENTS.labels(event_type(kind), outcome, label)
        child.inc(n)


def events_arrived(types: Iterable[str]) -> None:
    """Events of these type labels arrived now (the silence clock)."""
    if not _enabled:
        return
    now = time.time()
    for kind in set(types):
        f.LAST_EVENT.labels(kind).set(now)


def webhook_delivery(outcome: str, lag_seconds: float | None = None) -> None:
    """One webhook attempt (`WEBHOOK_OUTCOMES`); a delivered one with its lag."""
    if not _enabled:
        return
    _webhooks[outcome].inc()
    if lag_seconds is not None:
        f.WEBHOOK_LAG.observe(max(lag_seconds, 0.0))


def endpoint_disabled(reason: str) -> None:
    """A webhook endpoint was disabled (gone, failing)."""
    if _enabled:
        f.ENDPOINTS_DISABLED.labels(reason).inc()


def suppressions_added(reasons: Iterable[str]) -> None:
    """Addresses were added to suppression lists, one reason each."""
    if not _enabled:
        return
    for reason, n in Tally(reasons).items():
        f.SUPPRESSIONS_ADDED.labels(reason).inc(n)


class Pending:
    """What one database transaction would count, counted once it has committed (so that a
    rolled-back or retried attempt counts nothing).

    `events` is keyed by (type as stored, outcome, app id's `.int`, 0 when not linked): ints
    hash in C, a UUID's hash is Python code, and intake counts every event it stores.
    """

    __slots__ = ("_suppressed", "events")

    def __init__(self) -> None:
        self.events: Tally[tuple[str | None, str, int]] = Tally()
        self._suppressed: list[str] = []

    def event(self, kind: str | None, outcome: str, app_id: uuid.UUID | None, n: int = 1) -> None:
        """`n` Mailjet events of type `kind` with `outcome` (`EVENT_OUTCOMES`)."""
        if n > 0:
            self.events[(kind, outcome, 0 if app_id is None else app_id.int)] += n

    def suppressed(self, reasons: Iterable[str]) -> None:
        """Addresses newly suppressed, one reason each."""
        self._suppressed.extend(reasons)

    def commit(self) -> None:
        """Count everything (call once the transaction has committed)."""
        events(self.events)
        suppressions_added(self._suppressed)
