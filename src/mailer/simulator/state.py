"""In-memory state of the simulator: accepted messages, send calls, event callback URLs.

Everything runs on one event loop, so no locking is needed. Tests may read the state
directly (``state.accepted``, ``state.calls``, ``state.count_for(custom_id)``).
"""

from __future__ import annotations

import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "FIRST_MESSAGE_ID",
    "AcceptedMessage",
    "CallbackRecord",
    "DeliveryAttempt",
    "EventDelivery",
    "SimulatorState",
    "fresh_first_message_id",
]

# 2**59, the order of magnitude of real Mailjet MessageIDs: well above 2**53, so a client
# that routes ids through a float visibly corrupts them.
FIRST_MESSAGE_ID = 576460752303423488


def fresh_first_message_id() -> int:
    """Where a simulator starting now numbers its MessageIDs: past every id an earlier start
    could have issued, as Mailjet never reuses one (a database kept across restarts, as
    `mailer run`'s is, would otherwise link a new message's events to an old message).

    The microseconds since the epoch, past `FIRST_MESSAGE_ID`: a simulator would have to
    accept a million messages a second to catch up with a later start (~2**59 + 2**51).
    """
    return FIRST_MESSAGE_ID + time.time_ns() // 1000


API_KEY_ID = 1
# Mailjet campaign and contact ids exceed 2**31; so do the simulator's.
FIRST_CAMPAIGN_ID = 7653742672
FIRST_CONTACT_ID = 3000000001
MAX_DELIVERY_LOG = 10_000  # event POSTs kept in ``state.deliveries``, newest last


@dataclass(slots=True)
class AcceptedMessage:
    """One recipient-level message the simulator accepted (one per To/Cc/Bcc address).

    Holds what an event poster needs: ids, CustomID, address, EventPayload, time accepted.
    ``status`` follows Mailjet's ``/message`` Status values and may be moved on by events.
    """

    message_id: int
    uuid: str
    custom_id: str
    email: str
    kind: str  # "to", "cc" or "bcc"
    payload: str  # the message's EventPayload, "" if none
    accepted_at: float  # Unix time, seconds
    subject: str
    from_email: str
    campaign: str  # CustomCampaign, "" if none
    send_seq: int  # which accepted Messages element (per simulator) this recipient came from
    status: str = "sent"
    history: list[dict[str, Any]] = field(default_factory=list)  # /messagehistory rows

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready view for the ``/_sim/messages`` control endpoint."""
        return {
            "message_id": self.message_id,
            "uuid": self.uuid,
            "custom_id": self.custom_id,
            "email": self.email,
            "kind": self.kind,
            "payload": self.payload,
            "accepted_at": self.accepted_at,
            "subject": self.subject,
            "from_email": self.from_email,
            "campaign": self.campaign,
            "send_seq": self.send_seq,
            "status": self.status,
            "history": self.history,
        }

    def to_send_entry(self, href: str) -> dict[str, Any]:
        """This recipient's entry in a Send API success answer (``href`` ends with ``/``)."""
        return {
            "Email": self.email,
            "MessageUUID": self.uuid,
            "MessageID": self.message_id,
            "MessageHref": f"{href}{self.message_id}",
        }

    def to_rest(
        self, *, show_custom_id: bool, show_contact_alt: bool, show_subject: bool
    ) -> dict[str, Any]:
        """A ``GET /v3/REST/message`` row (the Show* flags fill the optional columns)."""
        arrived = datetime.fromtimestamp(self.accepted_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {
            "ID": self.message_id,
            "UUID": self.uuid,
            "ArrivedAt": arrived,
            "AttemptCount": 0,
            "CampaignID": 0,
            "ContactAlt": self.email if show_contact_alt else "",
            "ContactID": 0,
            "CustomID": self.custom_id if show_custom_id else "",
            "Status": self.status,
            "Subject": self.subject if show_subject else "",
        }


@dataclass(slots=True)
class CallbackRecord:
    """One ``/v3/REST/eventcallbackurl`` record."""

    id: int
    event_type: str
    url: str
    status: str
    is_backup: bool
    version: int

    def to_rest(self) -> dict[str, Any]:
        """The record as Mailjet shows it."""
        return {
            "APIKeyID": API_KEY_ID,
            "EventType": self.event_type,
            "ID": self.id,
            "IsBackup": self.is_backup,
            "Status": self.status,
            "Url": self.url,
            "Version": self.version,
        }


@dataclass(slots=True)
class DeliveryAttempt:
    """One HTTP POST of an event delivery: when, and the HTTP status or the error."""

    at: float  # Unix time, seconds
    status: int | None  # None: no HTTP answer (see ``error``)
    error: str = ""

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {"at": self.at, "status": self.status, "error": self.error}


@dataclass(slots=True)
class EventDelivery:
    """One event POST body (one event for Version 1, an array for Version 2) and its fate.

    ``url`` has the credentials stripped; ``authorization`` says whether a Basic
    ``Authorization`` header went with it. ``delivered`` once an attempt got 200;
    ``gave_up`` once retries ran out; ``refused`` when the URL was not a loopback one
    (nothing was posted). ``duplicate_of`` is set on a deliberate second copy.
    """

    id: int
    url: str
    version: int
    body: Any  # the JSON posted: a dict (Version 1) or a list of dicts (Version 2)
    authorization: bool
    attempts: list[DeliveryAttempt] = field(default_factory=list)
    delivered: bool = False
    gave_up: bool = False
    refused: bool = False
    duplicate_of: int | None = None

    @property
    def events(self) -> list[dict[str, Any]]:
        """The events this POST carries, whatever the Version."""
        return list(self.body) if isinstance(self.body, list) else [self.body]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready view for ``/_sim/events/deliveries``."""
        return {
            "id": self.id,
            "url": self.url,
            "version": self.version,
            "body": self.body,
            "authorization": self.authorization,
            "attempts": [a.to_json() for a in self.attempts],
            "delivered": self.delivered,
            "gave_up": self.gave_up,
            "refused": self.refused,
            "duplicate_of": self.duplicate_of,
        }


class SimulatorState:
    """What the simulator has seen and accepted, kept in memory.

    - ``accepted``: every :class:`AcceptedMessage`, in acceptance order.
    - ``calls``: the recipient count (To+Cc+Bcc entries as sent) of every send call whose
      body parsed, faulted and refused calls included.
    - ``callbacks``: registered event callback URLs by id.
    - ``listeners``: functions called with each new :class:`AcceptedMessage` (e.g. an event
      poster); they must not block.
    - ``deliveries``: the last event POSTs (:class:`EventDelivery`), oldest first;
      ``event_counts`` counts events by type plus ``unrouted``/``refused``/``delivered``...
    - ``generation``: bumped by :meth:`reset`, so work scheduled before a reset is dropped;
      ``reset_listeners`` are called after each reset (the poster cancels pending work).
    """

    def __init__(
        self, *, first_message_id: int = FIRST_MESSAGE_ID, clock: Callable[[], float] = time.time
    ) -> None:
        self._first_message_id = first_message_id
        self._clock = clock
        self.listeners: list[Callable[[AcceptedMessage], None]] = []
        self.reset_listeners: list[Callable[[], None]] = []
        self.generation = 0
        self.reset()

    def reset(self) -> None:
        """Forget everything (messages, calls, counters, callbacks); listeners stay."""
        self.accepted: list[AcceptedMessage] = []
        self.calls: list[int] = []
        self.call_times: list[float] = []  # when each of `calls` came, Unix time
        self.callbacks: dict[int, CallbackRecord] = {}
        self.rejected_messages = 0
        self.sandbox_calls = 0
        self.faults: Counter[str] = Counter()
        self._by_id: dict[int, AcceptedMessage] = {}
        self._by_custom_id: dict[str, list[AcceptedMessage]] = {}
        self._sends_by_custom_id: Counter[str] = Counter()
        self._next_id = self._first_message_id
        self._next_send_seq = 0
        self._next_callback_id = 1
        self.generation += 1
        self.deliveries: deque[EventDelivery] = deque(maxlen=MAX_DELIVERY_LOG)
        self.event_counts: Counter[str] = Counter()
        self._campaign_ids: dict[str, int] = {}
        self._contact_ids: dict[str, int] = {}
        self._next_delivery_id = 1
        for listener in self.reset_listeners:
            listener()

    # -- send ------------------------------------------------------------------------------

    def record_call(self, recipients: int) -> None:
        """Note one send call, when, and how many recipients it carried."""
        self.calls.append(recipients)
        self.call_times.append(self._clock())

    def accept(
        self,
        recipients: Iterable[tuple[str, str]],
        *,
        custom_id: str,
        payload: str,
        subject: str,
        from_email: str,
        campaign: str,
    ) -> list[AcceptedMessage]:
        """Record one accepted ``Messages`` element; ``recipients`` are (email, kind) pairs."""
        now = self._clock()
        seq = self._next_send_seq
        self._next_send_seq += 1
        records: list[AcceptedMessage] = []
        for email, kind in recipients:
            record = AcceptedMessage(
                message_id=self._next_id,
                uuid=str(uuid.uuid4()),
                custom_id=custom_id,
                email=email,
                kind=kind,
                payload=payload,
                accepted_at=now,
                subject=subject,
                from_email=from_email,
                campaign=campaign,
                send_seq=seq,
            )
            self._next_id += 1
            records.append(record)
            self.accepted.append(record)
            self._by_id[record.message_id] = record
            self._by_custom_id.setdefault(custom_id, []).append(record)
            for listener in self.listeners:
                listener(record)
        self._sends_by_custom_id[custom_id] += 1
        return records

    def count_for(self, custom_id: str) -> int:
        """How many accepted ``Messages`` elements carried ``custom_id`` (1 = sent once)."""
        return self._sends_by_custom_id.get(custom_id, 0)

    def messages_for(self, custom_id: str) -> list[AcceptedMessage]:
        """The recipient-level messages accepted with ``custom_id``."""
        return list(self._by_custom_id.get(custom_id, ()))

    def get(self, message_id: int) -> AcceptedMessage | None:
        """The accepted message with this MessageID, if any."""
        return self._by_id.get(message_id)

    def find(
        self,
        *,
        custom_id: str | None = None,
        email: str | None = None,
        from_ts: float | None = None,
        to_ts: float | None = None,
    ) -> list[AcceptedMessage]:
        """Accepted messages matching every given filter, oldest first."""
        rows: Iterable[AcceptedMessage] = (
            self._by_custom_id.get(custom_id, ()) if custom_id is not None else self.accepted
        )
        folded = email.casefold() if email is not None else None
        return [
            r
            for r in rows
            if (folded is None or r.email.casefold() == folded)
            and (from_ts is None or r.accepted_at >= from_ts)
            and (to_ts is None or r.accepted_at <= to_ts)
        ]

    def stats(self) -> dict[str, Any]:
        """Counters for ``/_sim/stats``."""
        return {
            "accepted": len(self.accepted),
            "accepted_messages": sum(self._sends_by_custom_id.values()),
            "rejected_messages": self.rejected_messages,
            "calls": len(self.calls),
            "sandbox_calls": self.sandbox_calls,
            "max_recipients_per_call": max(self.calls, default=0),
            "faults": dict(self.faults),
            "duplicates": {cid: n for cid, n in self._sends_by_custom_id.items() if n > 1},
            "by_custom_id": dict(self._sends_by_custom_id),
            "events": dict(self.event_counts),
        }

    # -- events ----------------------------------------------------------------------------

    def campaign_id(self, campaign: str) -> int:
        """A stable ``mj_campaign_id`` for a CustomCampaign value (``""`` has one too)."""
        return self._campaign_ids.setdefault(campaign, FIRST_CAMPAIGN_ID + len(self._campaign_ids))

    def contact_id(self, email: str) -> int:
        """A stable ``mj_contact_id`` for an address (case-insensitive)."""
        key = email.casefold()
        return self._contact_ids.setdefault(key, FIRST_CONTACT_ID + len(self._contact_ids))

    def new_delivery(
        self, *, url: str, version: int, body: Any, authorization: bool
    ) -> EventDelivery:
        """Create an :class:`EventDelivery`, log it in ``deliveries`` and return it."""
        delivery = EventDelivery(self._next_delivery_id, url, version, body, authorization)
        self._next_delivery_id += 1
        self.deliveries.append(delivery)
        return delivery

    def callback_for(self, event_type: str) -> CallbackRecord | None:
        """Where an event of this type goes: the alive primary URL, else an alive backup."""
        for is_backup in (False, True):
            record = self.find_callback(event_type, is_backup)
            if record is not None and record.status == "alive":
                return record
        return None

    # -- event callback URLs ---------------------------------------------------------------

    def find_callback(self, event_type: str, is_backup: bool) -> CallbackRecord | None:
        """The record for this event type and backup flag, if registered."""
        for record in self.callbacks.values():
            if record.event_type == event_type and record.is_backup == is_backup:
                return record
        return None

    def add_callback(
        self, *, event_type: str, url: str, status: str, is_backup: bool, version: int
    ) -> CallbackRecord:
        """Store a new callback URL record and return it."""
        record = CallbackRecord(self._next_callback_id, event_type, url, status, is_backup, version)
        self._next_callback_id += 1
        self.callbacks[record.id] = record
        return record
