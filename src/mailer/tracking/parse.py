"""Lenient parsing of Mailjet Event API callback bodies.

Mailjet POSTs either one bare event object (callback ``Version: 1``) or an array of events
(``Version: 2``, possibly empty). Any answer but 200 makes Mailjet retry the whole POST, so
parsing never rejects an individual event: items we do not understand (not an object, or
an unknown/missing ``event``) are kept with ``understood=False`` so the raw data can still
be stored. Only a body that is not JSON, or JSON that is neither object nor array, raises
:class:`InvalidCallbackBody`.

Decoding uses orjson, which keeps integers exact (MessageIDs exceed 2**53), and a number is
never routed through ``float``.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from mailer.tracking.precedence import EventType, RecipientStatus, status_for_event

__all__ = [
    "NON_OBJECT_KEY",
    "InvalidCallbackBody",
    "MailjetEvent",
    "dedupe_key_of",
    "parse_callback_body",
    "parse_event",
    "status_of",
    "type_and_test",
]

_BOM = b"\xef\xbb\xbf"
_INT64_MAX = 2**63 - 1
_INT_RE = re.compile(r"-?[0-9]{1,20}")
_DEDUPE_DOMAIN = b"mailer/mailjet-event/v1\n"
NON_OBJECT_KEY = "_non_object_item"
"""Key under which a non-object array item is kept in :attr:`MailjetEvent.raw`."""


class InvalidCallbackBody(ValueError):
    """The body is not JSON, or is JSON but neither an object nor an array."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MailjetEvent:
    """One Mailjet tracking event, normalised. ``raw`` keeps the original object.

    Optional text fields are ``None`` when absent or ``""``. Boolean and integer fields are
    ``None`` when absent or unparseable (test events carry ``""`` there).
    """

    type: EventType | None
    """``None`` when the ``event`` field is missing or not one of the seven types."""
    understood: bool
    """False for items that are not objects or have no known ``event``; store, don't apply."""
    time: datetime
    """Event time (UTC, 1-second resolution); the parse time if ``time_estimated``."""
    time_estimated: bool
    """True when ``time`` was missing or invalid and the parse time was used instead."""
    message_id: int
    """Mailjet MessageID (int64); 0 when missing, zero or invalid."""
    message_uuid: str | None
    email: str
    """Recipient address, stripped and lower-cased for matching (original in ``raw``)."""
    custom_id: str | None
    payload: str | None
    url: str | None = None
    hard_bounce: bool | None = None
    blocked: bool | None = None
    error_related_to: str | None = None
    error: str | None = None
    comment: str | None = None
    source: str | None = None
    smtp_reply: str | None = None
    ip: str | None = None
    geo: str | None = None
    agent: str | None = None
    mj_list_id: int | None = None
    is_test: bool
    """True when ``message_id`` is 0: UI test events, or events that cannot be matched by id."""
    raw: dict[str, Any] = field(compare=False, repr=False)
    """The original event object, unknown fields included. Treat as read-only."""
    dedupe_key: bytes
    """sha256 of the canonical ``raw``: equal for redeliveries, different for new events."""


def parse_callback_body(body: bytes, *, now: datetime | None = None) -> list[MailjetEvent]:
    """Parse a Mailjet callback body (a single event object or an array of them).

    Args:
        body: the raw request body.
        now: the time to use for events without a valid ``time`` (default: current UTC).

    Raises:
        InvalidCallbackBody: not JSON, or JSON that is neither an object nor an array.
    """
    parse_time = now if now is not None else datetime.now(UTC)
    return [parse_event(item, now=parse_time) for item in decode_callback_body(body)]


def decode_callback_body(body: bytes) -> list[Any]:
    """The items of a callback body: one event object (Version 1) or an array (Version 2).

    Raises:
        InvalidCallbackBody: not JSON, or JSON that is neither an object nor an array.
    """
    try:
        decoded = orjson.loads(body.removeprefix(_BOM))
    except orjson.JSONDecodeError as exc:
        raise InvalidCallbackBody(f"callback body is not valid JSON: {exc}") from exc
    if isinstance(decoded, dict):
        return [decoded]
    if isinstance(decoded, list):
        return decoded
    raise InvalidCallbackBody(f"callback body is a JSON {type(decoded).__name__}")


def parse_event(
    item: object, *, now: datetime | None = None, dedupe_key: bytes | None = None
) -> MailjetEvent:
    """Parse one decoded event (e.g. a stored ``raw`` re-read from the database).

    ``dedupe_key`` is the item's :func:`dedupe_key_of` when the caller has it already.
    Never raises: a non-object ``item`` is wrapped as ``{NON_OBJECT_KEY: item}``.
    """
    raw: dict[str, Any] = item if isinstance(item, dict) else {NON_OBJECT_KEY: item}
    event_type = _as_event_type(raw.get("event")) if isinstance(item, dict) else None
    timestamp = _as_time(raw.get("time"))
    if timestamp is None:
        event_time, time_estimated = (now if now is not None else datetime.now(UTC)), True
    else:
        event_time, time_estimated = timestamp, False
    message_id = _as_message_id(raw.get("MessageID"))
    email = raw.get("email")
    return MailjetEvent(
        type=event_type,
        understood=event_type is not None,
        time=event_time,
        time_estimated=time_estimated,
        message_id=message_id,
        message_uuid=_as_str(raw.get("Message_GUID")),
        email=email.strip().lower() if isinstance(email, str) else "",
        custom_id=_as_str(raw.get("CustomID")),
        payload=_as_str(raw.get("Payload")),
        url=_as_str(raw.get("url")),
        hard_bounce=_as_bool(raw.get("hard_bounce")),
        blocked=_as_bool(raw.get("blocked")),
        error_related_to=_as_str(raw.get("error_related_to")),
        error=_as_str(raw.get("error")),
        comment=_as_str(raw.get("comment")),
        source=_as_str(raw.get("source")),
        smtp_reply=_as_str(raw.get("smtp_reply")),
        ip=_as_str(raw.get("ip")),
        geo=_as_str(raw.get("geo")),
        agent=_as_str(raw.get("agent")),
        mj_list_id=_as_int(raw.get("mj_list_id")),
        is_test=message_id == 0,
        raw=raw,
        dedupe_key=_dedupe_key(raw) if dedupe_key is None else dedupe_key,
    )


def dedupe_key_of(item: object) -> bytes:
    """The :attr:`MailjetEvent.dedupe_key` :func:`parse_event` gives ``item``, alone."""
    return _dedupe_key(item if isinstance(item, dict) else {NON_OBJECT_KEY: item})


def type_and_test(item: object) -> tuple[EventType | None, bool]:
    """The :attr:`MailjetEvent.type` and :attr:`MailjetEvent.is_test` :func:`parse_event`
    gives ``item``, without the rest of the parse."""
    if not isinstance(item, dict):
        return None, True  # wrapped: no event, no MessageID
    return _as_event_type(item.get("event")), _as_message_id(item.get("MessageID")) == 0


def status_of(event: MailjetEvent) -> RecipientStatus | None:
    """The recipient status ``event`` produces, or ``None`` if its type is unknown."""
    if event.type is None:
        return None
    return status_for_event(event.type, hard_bounce=event.hard_bounce)


def _dedupe_key(raw: dict[str, Any]) -> bytes:
    """sha256 over the canonical JSON of ``raw`` (sorted keys, no whitespace).

    Mailjet has no event id and retries whole POSTs, so a redelivery carries the same
    objects, possibly regrouped (Version 1 vs 2) or re-serialised; the canonical form makes
    their keys equal. Every field takes part, so distinct events that share MessageID, type
    and second (two clicks on different links, opens from two devices, UI test events that
    all have MessageID 0) keep distinct keys, and fields Mailjet adds later count too.
    """
    try:
        canonical = orjson.dumps(raw, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # e.g. ints beyond 64 bits in a dict not produced by orjson
        canonical = json.dumps(
            raw, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=repr
        ).encode()
    return hashlib.sha256(_DEDUPE_DOMAIN + canonical).digest()


def _as_event_type(value: object) -> EventType | None:
    if not isinstance(value, str):
        return None
    try:
        return EventType(value.strip().lower())
    except ValueError:
        return None


def _as_int(value: object) -> int | None:
    """Exact integer from an int or a decimal string; bools, floats and "" give None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        if _INT_RE.fullmatch(text):
            return int(text)
    return None


def _as_message_id(value: object) -> int:
    number = _as_int(value)
    if number is None or not 0 < number <= _INT64_MAX:
        return 0
    return number


def _as_time(value: object) -> datetime | None:
    seconds: float | None
    if isinstance(value, float):
        seconds = value
    else:
        seconds = _as_int(value)
        if seconds is None and isinstance(value, str):
            try:
                seconds = float(value)
            except ValueError:
                return None
    if seconds is None or not seconds > 0:
        return None
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _as_bool(value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        return {"true": True, "1": True, "false": False, "0": False}.get(value.strip().lower())
    return None


def _as_str(value: object) -> str | None:
    if isinstance(value, str):
        return value or None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None
