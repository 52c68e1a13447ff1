"""Mailjet's request checks and error shapes, as documented or observed (see the reference).

Whole-request failures (no ``Messages`` in the answer) come back as :class:`RequestFailure`;
per-message failures as lists of Mailjet error entries, so the other messages still go out.

Simulator choices where Mailjet documents nothing:
- CustomID longer than 64 characters: per-message ``mj-0006`` (string too long).
- Attachments over 15 MB in total: per-message ``mj-0011`` (payload too large); ``mj-0012``
  stays for empty Filename / ContentType / Base64Content.
- The 50-recipient limit counts To+Cc+Bcc entries as sent, before de-duplication.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = [
    "EVENT_TYPES",
    "FORBIDDEN_HEADERS",
    "MAX_ATTACHMENT_BYTES",
    "MAX_RECIPIENTS_PER_CALL",
    "UNAUTHORIZED_BODY",
    "RequestFailure",
    "SendRequest",
    "check_callback",
    "check_message",
    "check_request",
    "parse_send",
    "rest_error",
    "unique_recipients",
]

MAX_RECIPIENTS_PER_CALL = 50
_BAD_EMAIL_CHARS = re.compile(r'[\s<>()\[\],;:"\\]')
MAX_SUBJECT = 255
MAX_URL_TAGS = 256
MAX_CUSTOM_ID = 64
MAX_ATTACHMENT_BYTES = 15 * 1024 * 1024
_RECIPIENT_KEYS = (("To", "to"), ("Cc", "cc"), ("Bcc", "bcc"))
_TRACKING_VALUES = frozenset({"account_default", "disabled", "enabled"})
FORBIDDEN_HEADERS = frozenset(
    h.casefold()
    for h in (
        "From Sender Subject To Cc Bcc Return-Path Delivered-To DKIM-Signature DomainKey-Status "
        "Received-SPF Authentication-Results Received X-Mailjet-Prio X-Mailjet-Debug User-Agent "
        "X-Mailer X-MJ-CustomID X-MJ-EventPayload X-MJ-Vars X-MJ-TemplateErrorDeliver "
        "X-MJ-TemplateErrorReporting X-MJ-TemplateLanguage X-Mailjet-TrackOpen "
        "X-Mailjet-TrackClick X-MJ-TemplateID X-MJ-WorkflowID X-Feedback-Id "
        "X-Mailjet-Segmentation List-Id X-MJ-MID X-MJ-ErrorMessage Date X-CSA-Complaints "
        "Message-Id X-Mailjet-Campaign X-MJ-StatisticsContactsListID"
    ).split()
)
EVENT_TYPES = ("sent", "open", "click", "bounce", "spam", "blocked", "unsub")
_CALLBACK_FIELDS: dict[str, type] = {
    "EventType": str,
    "Url": str,
    "Status": str,
    "IsBackup": bool,
    "Version": int,
}
UNAUTHORIZED_BODY = {
    "StatusCode": 401,
    "ErrorMessage": (
        "API key authentication/authorization failure. You may be unauthorized to access the "
        "API or your API key may be expired. Visit API keys management section to check your keys."
    ),
}


@dataclass(frozen=True, slots=True)
class RequestFailure:
    """A whole-request error: HTTP status and JSON body (without ``Messages``)."""

    status: int
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class SendRequest:
    """A parsed send call: ``Messages`` elements with ``Globals`` merged in."""

    messages: list[Any]
    recipients: int
    sandbox: bool


def _error(code: str, message: str, related: list[str], status: int = 400) -> dict[str, Any]:
    return {
        "ErrorIdentifier": str(uuid.uuid4()),
        "ErrorCode": code,
        "StatusCode": status,
        "ErrorMessage": message,
        "ErrorRelatedTo": related,
    }


def _whole(code: str, message: str, related: list[str]) -> RequestFailure:
    return RequestFailure(400, _error(code, message, related))


def rest_error(status: int, message: str) -> dict[str, Any]:
    """A REST v3 error body."""
    return {"ErrorInfo": "", "ErrorMessage": message, "StatusCode": status}


def _merge_globals(glob: dict[str, Any], msg: Any) -> Any:
    if not isinstance(msg, dict):
        return msg
    merged = {**glob, **msg}
    for key in ("Variables", "Headers"):
        g, m = glob.get(key), msg.get(key)
        if isinstance(g, dict) and isinstance(m, dict):
            merged[key] = {**g, **m}
    return merged


def _count_recipients(msg: Any) -> int:
    if not isinstance(msg, dict):
        return 0
    return sum(len(v) for k, _ in _RECIPIENT_KEYS if isinstance(v := msg.get(k), list))


def parse_send(raw: bytes) -> SendRequest | RequestFailure:
    """Decode a ``/v3.1/send`` body and check its root (``mj-0002``/``0003``/``0004``/``0007``)."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _whole(
            "mj-0002", "Malformed JSON, please review the syntax and properties types.", []
        )
    if not isinstance(data, dict):
        return _whole(
            "mj-0002", "Malformed JSON, please review the syntax and properties types.", []
        )
    messages = data.get("Messages")
    if messages is None:
        return _whole("mj-0003", "Missing mandatory property.", ["Messages"])
    if not isinstance(messages, list):
        return _whole("mj-0004", 'Type mismatch. Expected type "array".', ["Messages"])
    if not messages:
        return _whole("mj-0007", "At least 1 element is required in the array.", ["Messages"])
    glob = data.get("Globals")
    if isinstance(glob, dict) and glob:
        messages = [_merge_globals(glob, m) for m in messages]
    recipients = sum(_count_recipients(m) for m in messages)
    return SendRequest(messages, recipients, data.get("SandboxMode") is True)


def _has_null(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, dict):
        return any(_has_null(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_null(v) for v in value)
    return False


def check_request(request: SendRequest) -> RequestFailure | None:
    """Checks that fail the whole call: too many recipients, JSON null in Variables."""
    if request.recipients > MAX_RECIPIENTS_PER_CALL:
        return _whole(
            "send-0015",
            "Total number of recipients exceeded. Max allowed - 50.",
            ["To", "Bcc", "Cc"],
        )
    for msg in request.messages:
        if isinstance(msg, dict) and "Variables" in msg and _has_null(msg["Variables"]):
            # Observed: Mailjet fails the call with a 500 rather than reporting the message.
            return RequestFailure(
                500,
                {
                    "ErrorIdentifier": str(uuid.uuid4()),
                    "StatusCode": 500,
                    "ErrorMessage": "Cannot convert data from Null value",
                },
            )
    return None


def is_valid_email(address: str) -> bool:
    """A loose syntactic check in the spirit of Mailjet's ``mj-0013``."""
    if len(address) > 254 or address.count("@") != 1:
        return False
    local, domain = address.split("@")
    if not local or not domain or "." not in domain or ".." in domain:
        return False
    if domain[0] in ".-" or domain[-1] in ".-":
        return False
    return _BAD_EMAIL_CHARS.search(address) is None


def _check_address(value: Any, where: str, errors: list[dict[str, Any]]) -> None:
    if not isinstance(value, dict):
        errors.append(_error("mj-0004", 'Type mismatch. Expected type "email".', [where]))
        return
    email = value.get("Email")
    if email is None:
        errors.append(_error("mj-0003", "Missing mandatory property.", [f"{where}.Email"]))
    elif not isinstance(email, str):
        errors.append(
            _error("mj-0004", 'Type mismatch. Expected type "string".', [f"{where}.Email"])
        )
    elif not email:
        errors.append(_error("mj-0012", "Empty string is not allowed.", [f"{where}.Email"]))
    elif not is_valid_email(email):
        errors.append(
            _error("mj-0013", f'"{email}" is an invalid email address.', [f"{where}.Email"])
        )


def _check_recipients(msg: dict[str, Any], errors: list[dict[str, Any]]) -> None:
    for key, _ in _RECIPIENT_KEYS:
        value = msg.get(key)
        if value is None:
            if key == "To":
                errors.append(_error("mj-0003", "Missing mandatory property.", ["To"]))
            continue
        if not isinstance(value, list):
            errors.append(
                _error("mj-0004", 'Type mismatch. Expected type "array of emails".', [key])
            )
        elif not value and key == "To":
            errors.append(_error("mj-0007", "At least 1 element is required in the array.", ["To"]))
        else:
            for i, item in enumerate(value):
                _check_address(item, f"{key}[{i}]", errors)


def _check_string(
    msg: dict[str, Any], key: str, limit: int | None, errors: list[dict[str, Any]]
) -> None:
    value = msg.get(key)
    if value is None:
        return
    if not isinstance(value, str):
        errors.append(_error("mj-0004", 'Type mismatch. Expected type "string".', [key]))
    elif limit is not None and len(value) > limit:
        errors.append(_error("mj-0006", f"Property value too long. Max allowed - {limit}.", [key]))


def _check_attachments(msg: dict[str, Any], errors: list[dict[str, Any]]) -> None:
    total = 0
    for key in ("Attachments", "InlinedAttachments"):
        items = msg.get(key)
        if items is None:
            continue
        if not isinstance(items, list):
            errors.append(_error("mj-0004", 'Type mismatch. Expected type "array".', [key]))
            continue
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                errors.append(
                    _error("mj-0004", 'Type mismatch. Expected type "object".', [f"{key}[{i}]"])
                )
                continue
            for field in ("Filename", "ContentType", "Base64Content"):
                value = item.get(field)
                if not isinstance(value, str) or not value:
                    errors.append(
                        _error("mj-0012", "Empty string is not allowed.", [f"{key}[{i}].{field}"])
                    )
            content = item.get("Base64Content")
            if isinstance(content, str):
                total += len(content) * 3 // 4 - content.count("=", -2)
    if total > MAX_ATTACHMENT_BYTES:
        errors.append(
            _error(
                "mj-0011", "Payload too large: attachments exceed 15 MB in total.", ["Attachments"]
            )
        )


def _check_headers(msg: dict[str, Any], errors: list[dict[str, Any]]) -> None:
    headers = msg.get("Headers")
    if headers is None:
        return
    if not isinstance(headers, dict):
        errors.append(_error("mj-0004", 'Type mismatch. Expected type "object".', ["Headers"]))
        return
    for name in headers:
        if name.casefold() in FORBIDDEN_HEADERS:
            errors.append(
                _error(
                    "send-0011",
                    f'The "{name}" header is not allowed; use the dedicated property instead.',
                    [f'Headers["{name}"]'],
                )
            )


def check_message(msg: Any) -> list[dict[str, Any]]:
    """Mailjet's per-message checks; an empty list means the message is accepted."""
    if not isinstance(msg, dict):
        return [_error("mj-0004", 'Type mismatch. Expected type "object".', ["Messages"])]
    errors: list[dict[str, Any]] = []
    template = msg.get("TemplateID")
    sender = msg.get("From")
    if sender is None:
        if template is None:
            errors.append(_error("mj-0003", "Missing mandatory property.", ["From"]))
    else:
        _check_address(sender, "From", errors)
    _check_recipients(msg, errors)
    if msg.get("TextPart") is None and msg.get("HTMLPart") is None and template is None:
        errors.append(
            _error(
                "send-0003",
                'At least "HTMLPart", "TextPart" or "TemplateID" must be provided.',
                ["HTMLPart", "TextPart", "TemplateID"],
            )
        )
    _check_string(msg, "Subject", MAX_SUBJECT, errors)
    _check_string(msg, "URLTags", MAX_URL_TAGS, errors)
    _check_string(msg, "CustomID", MAX_CUSTOM_ID, errors)
    _check_string(msg, "EventPayload", None, errors)
    _check_string(msg, "CustomCampaign", MAX_SUBJECT, errors)
    _check_headers(msg, errors)
    _check_attachments(msg, errors)
    if "Variables" in msg and not isinstance(msg["Variables"], dict):
        errors.append(_error("mj-0004", 'Type mismatch. Expected type "object".', ["Variables"]))
    for key in ("TrackOpens", "TrackClicks"):
        if key in msg and msg[key] not in _TRACKING_VALUES:
            errors.append(_error("mj-0005", f"Value not allowed for {key}.", [key]))
    if msg.get("TemplateLanguage") is not True:
        related = [k for k in ("TemplateErrorReporting", "TemplateErrorDeliver") if k in msg]
        if related:
            errors.append(
                _error(
                    "send-0016",
                    "TemplateErrorReporting and TemplateErrorDeliver need TemplateLanguage.",
                    related,
                )
            )
    if msg.get("DeduplicateCampaign") is True and not msg.get("CustomCampaign"):
        errors.append(
            _error(
                "send-0012", "DeduplicateCampaign needs CustomCampaign.", ["DeduplicateCampaign"]
            )
        )
    return errors


def unique_recipients(msg: dict[str, Any]) -> list[tuple[str, str]]:
    """(email, kind) per distinct address, To before Cc before Bcc, case-insensitively."""
    seen: set[str] = set()
    out: list[tuple[str, str]] = []
    for key, kind in _RECIPIENT_KEYS:
        for item in msg.get(key) or ():
            email: str = item["Email"]
            folded = email.casefold()
            if folded not in seen:
                seen.add(folded)
                out.append((email, kind))
    return out


def check_callback(data: Any, *, creating: bool) -> dict[str, Any] | str:
    """Validate an eventcallbackurl POST (``creating``) or PUT body.

    Returns the fields to store (with defaults when creating) or an error message.
    ``ID`` and ``APIKeyID`` are read-only and ignored; other unknown properties are refused.
    """
    if not isinstance(data, dict):
        return "Invalid JSON body: an object is expected."
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key in ("ID", "APIKeyID"):
            continue
        expected = _CALLBACK_FIELDS.get(key)
        if expected is None:
            return f'Invalid property "{key}".'
        if type(value) is not expected:
            return f'Invalid value for "{key}": expected {expected.__name__}.'
        out[key] = value
    if "EventType" in out and out["EventType"] not in EVENT_TYPES:
        allowed = ", ".join(EVENT_TYPES)
        return f'Invalid value for "EventType": {out["EventType"]!r} is not one of {allowed}.'
    if "Url" in out and not out["Url"].startswith(("http://", "https://")):
        return 'Invalid value for "Url": an http:// or https:// URL is expected.'
    if "Status" in out and out["Status"] not in ("alive", "dead"):
        return 'Invalid value for "Status": "alive" or "dead" expected.'
    if "Version" in out and out["Version"] not in (1, 2):
        return 'Invalid value for "Version": 1 or 2 expected.'
    if creating:
        for key in ("EventType", "Url"):
            if key not in out:
                return f'A non-empty value is required for "{key}".'
        out.setdefault("Status", "alive")
        out.setdefault("IsBackup", False)
        out.setdefault("Version", 1)  # Mailjet's default is probably 1 (reference, section 4)
    return out
