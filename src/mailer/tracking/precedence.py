"""Recipient status state machine.

Every recipient of a job has one :class:`RecipientStatus`. It is changed by our own
verdicts (``accepted``, ``failed``, ``suppressed``) and by Mailjet's tracking events, which
arrive duplicated and in arbitrary order. To make the result independent of arrival order,
all statuses form a single chain ordered by :data:`STATUS_RANK` and a new observation is
combined with the current status by taking the maximum. ``max`` is commutative,
associative and idempotent, so any permutation of the same observations, with or without
duplicates, folds to the same status, and a status never moves backward.

The chain is defined here, once; the rule that applies it runs in PostgreSQL (the
``apply_events`` and ``recompute_statuses`` queries of ``tracking/queries.sql`` take
:data:`STATUS_CHAIN` as a parameter, and ``record_sends`` in migration 0005 moves only
``queued`` and ``failed`` recipients to ``accepted``). The property tests in
``tests/integration/test_status_rules.py`` drive that SQL, not a copy of it.

The chain, lowest first::

    queued < suppressed < failed < accepted < deferred < sent < opened < clicked
           < unsubscribed < spam < bounced < blocked

``failed`` and ``suppressed`` are our own verdicts, reached only from ``queued``. Nothing we
do moves a recipient out of them, but any status reported by Mailjet does: an event is
evidence that Mailjet holds the message, which beats our belief that it does not. This is
the lost-answer case: the Send API call timed out, our retries ran out (``failed``) or the
address was added to the suppression list before our retry (``suppressed``), yet the first
call had gone through and ``sent``/``opened`` events follow. The recipient then shows what
really happened to the email. See ``docs/status-model.md``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum
from types import MappingProxyType

__all__ = [
    "LOCAL_FINAL_STATUSES",
    "STATUS_CHAIN",
    "STATUS_RANK",
    "EventType",
    "RecipientStatus",
    "derive_job_status",
    "status_for_event",
]


class RecipientStatus(StrEnum):
    """Where one recipient's email stands."""

    QUEUED = "queued"
    """Stored by us, not yet handed to Mailjet (includes recipients waiting for a retry)."""
    ACCEPTED = "accepted"
    """The Send API answered success for this recipient."""
    DEFERRED = "deferred"
    """Soft bounce (``hard_bounce`` false): Mailjet keeps retrying, not final."""
    SENT = "sent"
    """Mailjet's ``sent`` event: the receiving server accepted the message."""
    OPENED = "opened"
    CLICKED = "clicked"
    UNSUBSCRIBED = "unsubscribed"
    SPAM = "spam"
    BOUNCED = "bounced"
    """Hard bounce: permanent failure reported by the receiving side."""
    BLOCKED = "blocked"
    """Mailjet accepted the call but did not send the message."""
    FAILED = "failed"
    """Our verdict: Mailjet rejected it at send time, or our retries ran out."""
    SUPPRESSED = "suppressed"
    """Our verdict: not sent because the address is on the app's suppression list."""


class EventType(StrEnum):
    """The seven Mailjet Event API event types (the ``event`` field)."""

    SENT = "sent"
    OPEN = "open"
    CLICK = "click"
    BOUNCE = "bounce"
    SPAM = "spam"
    BLOCKED = "blocked"
    UNSUB = "unsub"


_CHAIN: tuple[RecipientStatus, ...] = (
    RecipientStatus.QUEUED,
    RecipientStatus.SUPPRESSED,
    RecipientStatus.FAILED,
    RecipientStatus.ACCEPTED,
    RecipientStatus.DEFERRED,
    RecipientStatus.SENT,
    RecipientStatus.OPENED,
    RecipientStatus.CLICKED,
    RecipientStatus.UNSUBSCRIBED,
    RecipientStatus.SPAM,
    RecipientStatus.BOUNCED,
    RecipientStatus.BLOCKED,
)

STATUS_RANK: Mapping[RecipientStatus, int] = MappingProxyType(
    {status: rank for rank, status in enumerate(_CHAIN)}
)
"""Precedence of each status (higher wins). Stable: usable for ``GREATEST()`` in SQL."""

STATUS_CHAIN: list[str] = [str(s) for s in _CHAIN]
"""Every status, lowest precedence first: SQL takes ``array_position(chain, status) - 1`` as
the rank, so this chain (with :data:`STATUS_RANK`, made from it) is the one
source of the precedence."""

LOCAL_FINAL_STATUSES: frozenset[RecipientStatus] = frozenset(
    {RecipientStatus.FAILED, RecipientStatus.SUPPRESSED}
)
"""Statuses set by us for recipients that (as far as we know) never reached Mailjet."""

_EVENT_STATUS: Mapping[EventType, RecipientStatus] = MappingProxyType(
    {
        EventType.SENT: RecipientStatus.SENT,
        EventType.OPEN: RecipientStatus.OPENED,
        EventType.CLICK: RecipientStatus.CLICKED,
        EventType.SPAM: RecipientStatus.SPAM,
        EventType.BLOCKED: RecipientStatus.BLOCKED,
        EventType.UNSUB: RecipientStatus.UNSUBSCRIBED,
    }
)


def status_for_event(event_type: EventType, *, hard_bounce: bool | None = None) -> RecipientStatus:
    """Return the status a Mailjet event of ``event_type`` produces.

    ``hard_bounce`` matters only for ``bounce``: ``True`` gives ``bounced``; ``False`` or
    unknown (``None``, e.g. a test event carrying ``""``) gives ``deferred``, because a
    soft bounce is retried by Mailjet and a later ``sent`` or hard ``bounce`` will settle it.
    """
    if event_type is EventType.BOUNCE:
        return RecipientStatus.BOUNCED if hard_bounce is True else RecipientStatus.DEFERRED
    return _EVENT_STATUS[event_type]


def derive_job_status(recipient_statuses: Sequence[RecipientStatus]) -> RecipientStatus:
    """Return a job's status from its recipients' statuses.

    The job is as far along as its least advanced recipient among those that went (or are
    still to go) to Mailjet, i.e. all but ``failed``/``suppressed`` ones. If none did, the job
    is ``failed`` when any recipient failed, else ``suppressed``. So a job with one recipient
    still ``queued`` is ``queued``, and one suppressed address does not hide the others.

    Raises:
        ValueError: ``recipient_statuses`` is empty (a job always has a recipient).
    """
    if not recipient_statuses:
        raise ValueError("a job has at least one recipient")
    went = [s for s in recipient_statuses if s not in LOCAL_FINAL_STATUSES]
    if went:
        return min(went, key=STATUS_RANK.__getitem__)
    if RecipientStatus.FAILED in recipient_statuses:
        return RecipientStatus.FAILED
    return RecipientStatus.SUPPRESSED
