"""Values returned by the Mailjet client, and the parsing of Mailjet's JSON into them.

Parsers take already-decoded JSON (decoded with orjson, so 64-bit MessageIDs stay exact ints)
and raise :class:`ResponseShapeError` on anything Mailjet does not send.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "AcceptedRecipient",
    "DomainDns",
    "EventCallback",
    "LookedUpMessage",
    "MailjetSender",
    "MessageAccepted",
    "MessageError",
    "MessageEvent",
    "MessageRejected",
    "MessageResult",
    "RecipientKind",
    "ResponseShapeError",
    "SendResponse",
    "parse_domain_dns",
    "parse_event_callback",
    "parse_looked_up_message",
    "parse_message_event",
    "parse_send_results",
    "parse_sender",
]

RecipientKind = Literal["to", "cc", "bcc"]
_KINDS: tuple[tuple[str, RecipientKind], ...] = (("To", "to"), ("Cc", "cc"), ("Bcc", "bcc"))


class ResponseShapeError(ValueError):
    """A JSON answer does not have the shape Mailjet documents."""


@dataclass(frozen=True, slots=True)
class AcceptedRecipient:
    """One recipient of an accepted message, with its own Mailjet ids.

    ``message_id`` is 0 and ``message_uuid`` empty in sandbox mode: never key on them then.
    """

    email: str
    kind: RecipientKind
    message_id: int
    message_uuid: str


@dataclass(frozen=True, slots=True)
class MessageAccepted:
    """A ``Messages`` element Mailjet accepted for processing (not yet delivered)."""

    custom_id: str
    recipients: list[AcceptedRecipient]


@dataclass(frozen=True, slots=True)
class MessageError:
    """One error Mailjet reported for one ``Messages`` element."""

    code: str
    message: str
    related_to: list[str]
    status_code: int
    identifier: str = ""


@dataclass(frozen=True, slots=True)
class MessageRejected:
    """A ``Messages`` element Mailjet refused. Permanent: fix the input, don't resend it."""

    errors: list[MessageError]


MessageResult = MessageAccepted | MessageRejected


@dataclass(frozen=True, slots=True)
class SendResponse:
    """The answer to one ``/v3.1/send`` call.

    ``results[i]`` belongs to request message ``i``. ``http_status`` is informative only
    (Mailjet answers a mixed batch with 400); trust each result, and never resend an accepted one.
    """

    http_status: int
    results: list[MessageResult]

    @property
    def all_accepted(self) -> bool:
        """True when every message was accepted."""
        return all(isinstance(r, MessageAccepted) for r in self.results)


@dataclass(frozen=True, slots=True)
class LookedUpMessage:
    """A row of ``GET /v3/REST/message``: one recipient-level message Mailjet knows about."""

    message_id: int
    email: str | None
    custom_id: str | None
    status: str | None


@dataclass(frozen=True, slots=True)
class EventCallback:
    """A registered event callback URL (``/v3/REST/eventcallbackurl``)."""

    id: int
    event_type: str
    url: str
    status: str
    is_backup: bool
    version: int


@dataclass(frozen=True, slots=True)
class MessageEvent:
    """A row of ``/v3/REST/messagehistory/{id}``: one event of one message.

    ``event_type`` is the history's own word (``sent opened clicked bounced blocked unsub
    spam``), ``state`` the error of a bounce or block (``user unknown`` …), ``useragent`` the
    reader's User-Agent of an open or click; ``event_at`` is Unix seconds.
    """

    event_at: int
    event_type: str
    state: str
    useragent: str
    comment: str


@dataclass(frozen=True, slots=True)
class MailjetSender:
    """A row of ``/v3/REST/sender``: an address, or a whole domain as ``*@domain``.

    ``status`` is ``Active`` once validated (else ``Inactive``, or ``Deleted``).
    """

    id: int
    email: str
    status: str

    @property
    def domain(self) -> str:
        """The domain part, lower-cased."""
        return self.email.rpartition("@")[2].lower()


@dataclass(frozen=True, slots=True)
class DomainDns:
    """A row of ``/v3/REST/dns``: Mailjet's last SPF and DKIM check of a sending domain
    (``OK``, ``Error`` or ``Not checked``)."""

    id: int
    domain: str
    spf_status: str
    dkim_status: str
    last_check_at: str


def _int(value: Any, where: str) -> int:
    # bool is an int subclass; a float would mean precision was already lost upstream.
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and value.isdigit():
            return int(value)
        raise ResponseShapeError(f"{where}: expected an integer, got {value!r}")
    return value


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ResponseShapeError(f"{where}: expected a string, got {value!r}")
    return value


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _parse_recipients(entry: dict[str, Any], where: str) -> list[AcceptedRecipient]:
    recipients: list[AcceptedRecipient] = []
    for key, kind in _KINDS:
        items = entry.get(key)
        if items is None:
            continue
        if not isinstance(items, list):
            raise ResponseShapeError(f"{where}.{key}: expected a list")
        for j, item in enumerate(items):
            at = f"{where}.{key}[{j}]"
            if not isinstance(item, dict):
                raise ResponseShapeError(f"{at}: expected an object")
            recipients.append(
                AcceptedRecipient(
                    email=_str(item.get("Email"), f"{at}.Email"),
                    kind=kind,
                    message_id=_int(item.get("MessageID"), f"{at}.MessageID"),
                    message_uuid=_str(item.get("MessageUUID", ""), f"{at}.MessageUUID"),
                )
            )
    return recipients


def _parse_error(item: Any, where: str) -> MessageError:
    if not isinstance(item, dict):
        raise ResponseShapeError(f"{where}: expected an object")
    related = item.get("ErrorRelatedTo")
    status_code = item.get("StatusCode")
    return MessageError(
        code=str(item.get("ErrorCode") or ""),
        message=str(item.get("ErrorMessage") or ""),
        related_to=[str(r) for r in related] if isinstance(related, list) else [],
        status_code=status_code if type(status_code) is int else 400,
        identifier=str(item.get("ErrorIdentifier") or ""),
    )


def parse_send_results(messages: Any) -> list[MessageResult]:
    """Parse the ``Messages`` array of a ``/v3.1/send`` answer, keeping request order."""
    if not isinstance(messages, list):
        raise ResponseShapeError("Messages: expected a list")
    results: list[MessageResult] = []
    for i, entry in enumerate(messages):
        where = f"Messages[{i}]"
        if not isinstance(entry, dict):
            raise ResponseShapeError(f"{where}: expected an object")
        status = entry.get("Status")
        if status == "success":
            custom_id = entry.get("CustomID")
            results.append(
                MessageAccepted(
                    custom_id=custom_id if isinstance(custom_id, str) else "",
                    recipients=_parse_recipients(entry, where),
                )
            )
        elif status == "error":
            errors = entry.get("Errors")
            if not isinstance(errors, list):
                raise ResponseShapeError(f"{where}.Errors: expected a list")
            results.append(
                MessageRejected(
                    [_parse_error(e, f"{where}.Errors[{j}]") for j, e in enumerate(errors)]
                )
            )
        else:
            raise ResponseShapeError(f"{where}.Status: unknown value {status!r}")
    return results


def _row(item: Any, where: str) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise ResponseShapeError(f"{where}: expected an object")
    return item


def parse_looked_up_message(item: Any) -> LookedUpMessage:
    """Parse one ``Data`` row of ``GET /v3/REST/message``."""
    row = _row(item, "Data[]")
    return LookedUpMessage(
        message_id=_int(row.get("ID"), "Data[].ID"),
        email=_opt_str(row.get("ContactAlt")),
        custom_id=_opt_str(row.get("CustomID")),
        status=_opt_str(row.get("Status")),
    )


def parse_event_callback(item: Any) -> EventCallback:
    """Parse one ``Data`` row of ``/v3/REST/eventcallbackurl``."""
    row = _row(item, "Data[]")
    return EventCallback(
        id=_int(row.get("ID"), "Data[].ID"),
        event_type=_str(row.get("EventType"), "Data[].EventType"),
        url=_str(row.get("Url"), "Data[].Url"),
        status=str(row.get("Status") or ""),
        is_backup=bool(row.get("IsBackup", False)),
        version=_int(row.get("Version", 1), "Data[].Version"),
    )


def parse_sender(item: Any) -> MailjetSender:
    """Parse one ``Data`` row of ``/v3/REST/sender``."""
    row = _row(item, "Data[]")
    return MailjetSender(
        id=_int(row.get("ID"), "Data[].ID"),
        email=_str(row.get("Email"), "Data[].Email"),
        status=str(row.get("Status") or ""),
    )


def parse_domain_dns(item: Any) -> DomainDns:
    """Parse one ``Data`` row of ``/v3/REST/dns``."""
    row = _row(item, "Data[]")
    return DomainDns(
        id=_int(row.get("ID"), "Data[].ID"),
        domain=_str(row.get("Domain"), "Data[].Domain"),
        spf_status=str(row.get("SPFStatus") or ""),
        dkim_status=str(row.get("DKIMStatus") or ""),
        last_check_at=str(row.get("LastCheckAt") or ""),
    )


def parse_message_event(item: Any) -> MessageEvent:
    """Parse one ``Data`` row of ``/v3/REST/messagehistory/{id}``."""
    row = _row(item, "Data[]")
    return MessageEvent(
        event_at=_int(row.get("EventAt"), "Data[].EventAt"),
        event_type=_str(row.get("EventType"), "Data[].EventType"),
        state=str(row.get("State") or ""),
        useragent=str(row.get("Useragent") or ""),
        comment=str(row.get("Comment") or ""),
    )
