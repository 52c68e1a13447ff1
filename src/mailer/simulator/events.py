"""The simulator's event side: which events a recipient gets, and what they look like.

After accepting a message the simulator posts Mailjet Event API callbacks to the URLs
registered through its own ``/v3/REST/eventcallbackurl`` (see :mod:`mailer.simulator.poster`
for the delivery: grouping, basic auth, retries, duplicates, reordering). What happens to
a recipient is **scripted by its address**, through plus-tags of the local part:

=====================  ==========================================================
address                events, in order
=====================  ==========================================================
``ann@x``              ``sent``
``ann+open@x``         ``sent``, ``open``
``ann+click@x``        ``sent``, ``open``, ``click``
``ann+unsub@x``        ``sent``, ``open``, ``unsub``
``ann+spam@x``         ``sent``, ``spam``
``ann+soft@x``         ``bounce`` (``hard_bounce: false``, ``greylisted``), ``sent``
``ann+bounce@x``       ``bounce`` (``hard_bounce: true``, ``user unknown``)
``bounce+hard@x``      the same (``hard`` is an alias of ``bounce``)
``ann+blocked@x``      ``blocked`` (``preblocked``)
=====================  ==========================================================

Rules: the part before the first ``+`` is never interpreted (``bounce@x`` is a plain
address); tags are case-insensitive; unknown tags are ignored (``ann+news@x`` gets just
``sent``). Tags combine: ``blocked`` beats ``bounce``/``hard`` beats ``soft``; an address
that is blocked or hard-bounced gets nothing else; otherwise the engagement tags add, after
``sent``, ``open`` (once), then ``click``, ``unsub``, ``spam`` in that order, so
``ann+soft+click+spam@x`` gets bounce, sent, open, click, spam.

Event bodies follow the reference (§3.2 to §3.3): every event carries ``event``, ``time``,
``MessageID`` (a JSON number, exact), ``Message_GUID``, ``email``, ``mj_campaign_id``,
``mj_contact_id``, ``customcampaign``, ``CustomID`` and ``Payload`` (``""`` when unset), plus
the fields of its type. :class:`EventsConfig` holds the event side's options.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from mailer.simulator.state import AcceptedMessage

__all__ = [
    "AGENT",
    "EventsConfig",
    "Step",
    "build_event",
    "history_row",
    "parse_script",
]

AGENT = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0"
IP = "127.0.0.1"
GEO = "US"
SMTP_REPLY = "sent (250 2.0.0 OK 1433333948 fa5si855896wjc.199 - gsmtp)"
SPAM_SOURCE = "JMRPP"


class Step(enum.Enum):
    """One scripted event; ``value`` is its name, :attr:`event_type` Mailjet's ``event``."""

    SENT = "sent"
    OPEN = "open"
    CLICK = "click"
    SOFT_BOUNCE = "soft_bounce"
    HARD_BOUNCE = "hard_bounce"
    BLOCKED = "blocked"
    SPAM = "spam"
    UNSUB = "unsub"

    @property
    def event_type(self) -> str:
        """Mailjet's ``event`` value (both bounces are ``bounce``)."""
        return "bounce" if self in (Step.SOFT_BOUNCE, Step.HARD_BOUNCE) else self.value

    @property
    def message_status(self) -> str:
        """The ``/v3/REST/message`` ``Status`` this event leaves the message in."""
        return _STATUS[self]

    @property
    def delivers(self) -> bool:
        """True for the ``sent`` step."""
        return self is Step.SENT


_STATUS = {
    Step.SENT: "sent",
    Step.OPEN: "opened",
    Step.CLICK: "clicked",
    Step.SOFT_BOUNCE: "softbounced",
    Step.HARD_BOUNCE: "hardbounced",
    Step.BLOCKED: "blocked",
    Step.SPAM: "spam",
    Step.UNSUB: "unsub",
}
_HISTORY_TYPE = {
    Step.SENT: "sent",
    Step.OPEN: "opened",
    Step.CLICK: "clicked",
    Step.SOFT_BOUNCE: "bounced",
    Step.HARD_BOUNCE: "bounced",
    Step.BLOCKED: "blocked",
    Step.SPAM: "spam",
    Step.UNSUB: "unsub",
}
# (error_related_to, error, comment)
_ERRORS = {
    Step.HARD_BOUNCE: (
        "recipient",
        "user unknown",
        "550 5.1.1 Recipient address rejected: User unknown in local recipient table",
    ),
    Step.SOFT_BOUNCE: ("domain", "greylisted", "451 4.7.1 Greylisted, please try again later"),
    Step.BLOCKED: ("mailjet", "preblocked", ""),
}


def parse_script(email: str) -> tuple[Step, ...]:
    """The events scripted by ``email``'s plus-tags (see the module docstring)."""
    local = email.rpartition("@")[0] if "@" in email else email
    tags = {tag.strip().lower() for tag in local.split("+")[1:]}
    if "blocked" in tags:
        return (Step.BLOCKED,)
    if tags & {"bounce", "hard"}:
        return (Step.HARD_BOUNCE,)
    steps = [Step.SOFT_BOUNCE] if "soft" in tags else []
    steps.append(Step.SENT)
    if tags & {"open", "click", "unsub"}:
        steps.append(Step.OPEN)
    if "click" in tags:
        steps.append(Step.CLICK)
    if "unsub" in tags:
        steps.append(Step.UNSUB)
    if "spam" in tags:
        steps.append(Step.SPAM)
    return tuple(steps)


def build_event(
    message: AcceptedMessage,
    step: Step,
    *,
    when: int,
    campaign_id: int,
    contact_id: int,
    click_url: str,
) -> dict[str, Any]:
    """One event object exactly as Mailjet posts it (reference §3.2 to §3.3)."""
    event: dict[str, Any] = {
        "event": step.event_type,
        "time": when,
        "MessageID": message.message_id,
        "Message_GUID": message.uuid,
        "email": message.email,
        "mj_campaign_id": campaign_id,
        "mj_contact_id": contact_id,
        "customcampaign": message.campaign,
        "CustomID": message.custom_id,
        "Payload": message.payload,
    }
    if step is Step.SENT:
        event["mj_message_id"] = str(message.message_id)
        event["smtp_reply"] = SMTP_REPLY
    elif step in (Step.OPEN, Step.CLICK, Step.UNSUB):
        if step is Step.UNSUB:
            event["mj_list_id"] = 0
        event.update(ip=IP, geo=GEO, agent=AGENT)
        if step is Step.CLICK:
            event["url"] = click_url
    elif step in (Step.SOFT_BOUNCE, Step.HARD_BOUNCE):
        related, error, comment = _ERRORS[step]
        event["blocked"] = False
        event["hard_bounce"] = step is Step.HARD_BOUNCE
        event["error_related_to"] = related
        event["error"] = error
        event["comment"] = comment
    elif step is Step.BLOCKED:
        related, error, _ = _ERRORS[step]
        event["error_related_to"] = related
        event["error"] = error
    elif step is Step.SPAM:
        event["source"] = SPAM_SOURCE
    return event


def history_row(step: Step, when: int) -> dict[str, Any]:
    """The ``/v3/REST/messagehistory/{id}`` row for one event."""
    error = _ERRORS.get(step)
    engaged = step in (Step.OPEN, Step.CLICK, Step.UNSUB)
    return {
        "EventAt": when,
        "EventType": _HISTORY_TYPE[step],
        "State": error[1] if error else "",
        "Useragent": AGENT if engaged else "",
        "UseragentID": 1 if engaged else 0,
        "Comment": error[2] if error else "",
    }


@dataclass(frozen=True, slots=True)
class EventsConfig:
    """Options of the event side (``PUT /_sim/events`` replaces them; omitted = default).

    - ``enabled``: off = no events at all and message statuses never move (benchmarks).
    - ``post``: off = events happen (statuses move, ``/v3/REST/messagehistory`` fills) but no
      callback is posted, as when Mailjet's callbacks are lost (for backfill).
    - ``delay_ms``: from acceptance to a message's first event; ``step_ms``: between its
      consecutive events.
    - ``group_ms``: how long a Version 2 URL collects events before one POST (Mailjet: "the
      events of the last second"); ``max_batch``: most events per Version 2 POST.
    - ``retry_interval`` (s): between attempts after any non-200 answer (Mailjet: 30);
      ``retry_for`` (s): give up that long after the first failure (Mailjet: 24 h);
      ``timeout`` (s): for one POST.
    - ``duplicate_rate``: probability that a delivered POST is posted once more.
    - ``reorder``: shuffle the events of a group and the order of its POSTs; Version 1 URLs
      then also collect events for ``group_ms`` so there is something to shuffle.
    - ``seed``: seeds the duplicate and shuffle draws (``None``: unpredictable).
    - ``max_in_flight``: concurrent POSTs; ``click_url``: the ``url`` of click events.
    """

    enabled: bool = True
    post: bool = True
    delay_ms: float = 0.0
    step_ms: float = 0.0
    group_ms: float = 1000.0
    max_batch: int = 100
    retry_interval: float = 30.0
    retry_for: float = 24 * 3600.0
    timeout: float = 10.0
    duplicate_rate: float = 0.0
    reorder: bool = False
    seed: int | None = None
    max_in_flight: int = 16
    click_url: str = "http://localhost/simulated-click"

    def __post_init__(self) -> None:
        for name in ("delay_ms", "step_ms", "group_ms", "retry_for"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        for name in ("retry_interval", "timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")
        if not 0.0 <= self.duplicate_rate <= 1.0:
            raise ValueError("duplicate_rate must be between 0 and 1")
        if self.max_batch < 1 or self.max_in_flight < 1:
            raise ValueError("max_batch and max_in_flight must be >= 1")

    @classmethod
    def from_json(cls, data: Any) -> EventsConfig:
        """Build from a JSON object; unknown keys and wrong types raise ``ValueError``."""
        if not isinstance(data, Mapping):
            raise ValueError("events settings must be a JSON object")
        types = {f.name: f.type for f in fields(cls)}
        unknown = sorted(set(data) - set(types))
        if unknown:
            raise ValueError(f"unknown events settings: {', '.join(unknown)}")
        values: dict[str, Any] = {}
        for key, value in data.items():
            kind = types[key]
            if kind == "bool":
                if not isinstance(value, bool):
                    raise ValueError(f"{key} must be true or false")
            elif kind == "str":
                if not isinstance(value, str):
                    raise ValueError(f"{key} must be a string")
            elif kind in ("int", "int | None"):
                if value is None and kind == "int | None":
                    pass
                elif isinstance(value, bool) or not isinstance(value, int):
                    raise ValueError(f"{key} must be an integer")
            elif isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{key} must be a number")
            else:
                value = float(value)
            values[key] = value
        return cls(**values)

    def to_json(self) -> dict[str, Any]:
        """The settings as a JSON-ready dict."""
        return asdict(self)
