"""One vocabulary for what happened to an email, the same in the feed, in `/status`
timelines and in webhooks.

- **Statuses** (where a recipient stands) are past participles: ``queued``, ``accepted``,
  ``deferred``, ``sent``, ``opened``, ``clicked``, ``unsubscribed``, ``spam``, ``bounced``,
  ``blocked``, ``failed``, ``suppressed`` (:class:`~mailer.tracking.precedence.RecipientStatus`).
- **Event types** (what happened) are ``email.<what>``: ``email.sent``, ``email.opened``,
  ``email.clicked``, ``email.bounced`` (a hard bounce), ``email.delivery_delayed`` (a soft
  one: Mailjet keeps trying), ``email.blocked``, ``email.spam``, ``email.unsubscribed``;
  and, from Mailer itself rather than Mailjet, ``email.failed`` and ``email.suppressed``
  (webhooks only: they are not Mailjet events, so not in the feed).

A Mailjet event's type follows from the status it implies (a ``bounce`` is
``email.bounced`` or ``email.delivery_delayed``); Mailjet's own word stays available as
``mailjet_event``. Feed filters also take Mailjet's words, the names of earlier versions
(``open``, ``click``, ``bounce`` = both kinds of bounce …).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

from mailer.tracking.precedence import EventType, RecipientStatus
from mailer.webhooks import outbox

__all__ = [
    "FEED_TYPES",
    "OLD_FEED_TYPES",
    "event_type_of",
    "statuses_of_types",
    "webhook_type_of",
]

_STATUS_TYPE: Mapping[RecipientStatus, str] = MappingProxyType(
    {
        RecipientStatus.SENT: outbox.EMAIL_SENT,
        RecipientStatus.OPENED: outbox.EMAIL_OPENED,
        RecipientStatus.CLICKED: outbox.EMAIL_CLICKED,
        RecipientStatus.BOUNCED: outbox.EMAIL_BOUNCED,
        RecipientStatus.DEFERRED: outbox.EMAIL_DELIVERY_DELAYED,
        RecipientStatus.BLOCKED: outbox.EMAIL_BLOCKED,
        RecipientStatus.SPAM: outbox.EMAIL_SPAM,
        RecipientStatus.UNSUBSCRIBED: outbox.EMAIL_UNSUBSCRIBED,
    }
)
# Mailer's own events stored beside Mailjet's (the `canceled` event of a job the app
# canceled, from the jobs slice of #15): their status and their type.
_OWN_EVENTS: Mapping[str, str] = MappingProxyType({"canceled": "email.canceled"})
_TYPE_OF = {str(status): kind for status, kind in _STATUS_TYPE.items()} | dict(_OWN_EVENTS)
_STATUS_OF_TYPE = {kind: status for status, kind in _TYPE_OF.items()}

FEED_TYPES: frozenset[str] = frozenset(_TYPE_OF.values())
"""The event types the feed holds: those of Mailjet's events, and Mailer's own stored ones."""

OLD_FEED_TYPES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        str(EventType.SENT): (outbox.EMAIL_SENT,),
        str(EventType.OPEN): (outbox.EMAIL_OPENED,),
        str(EventType.CLICK): (outbox.EMAIL_CLICKED,),
        str(EventType.BOUNCE): (outbox.EMAIL_BOUNCED, outbox.EMAIL_DELIVERY_DELAYED),
        str(EventType.SPAM): (outbox.EMAIL_SPAM,),
        str(EventType.BLOCKED): (outbox.EMAIL_BLOCKED,),
        str(EventType.UNSUB): (outbox.EMAIL_UNSUBSCRIBED,),
        "email.deferred": (outbox.EMAIL_DELIVERY_DELAYED,),
        **{status: (kind,) for status, kind in _OWN_EVENTS.items()},
    }
)
"""Filter names of earlier versions (Mailjet's words), and the types each stands for."""


def event_type_of(status: str | None, mailjet_event: str | None) -> str | None:
    """The event type of a Mailjet event that implies ``status`` (an event Mailer does not
    understand keeps Mailjet's word, prefixed: ``mailjet.<event>``)."""
    kind = _TYPE_OF.get(status or "")
    if kind is not None:
        return kind
    return f"mailjet.{mailjet_event}" if mailjet_event else None


def statuses_of_types(types: Iterable[str]) -> list[str]:
    """The statuses whose events a feed filter on ``types`` keeps (``ValueError`` for a
    name that is neither a feed type nor an old one)."""
    statuses: set[str] = set()
    for name in types:
        for kind in OLD_FEED_TYPES.get(name, (name,)):
            status = _STATUS_OF_TYPE.get(kind)
            if status is None:
                raise ValueError(name)
            statuses.add(status)
    return sorted(statuses)


def webhook_type_of(status: RecipientStatus) -> str | None:
    """The webhook event type of the status a Mailjet event produced (None: none is sent)."""
    return _STATUS_TYPE.get(status)
