"""The email an app queues: validated against Mailjet's limits, turned into a Send API message.

Every check here runs before anything is stored, so a bad request gets a 422 naming the
field and never leaves a half-written job.
"""

from __future__ import annotations

import base64
import binascii
import functools
import math
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import orjson
from email_validator import EmailNotValidError, validate_email
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from mailer.delivery.textcheck import (
    LINE_BREAK_MESSAGE,
    NON_FINITE_MESSAGE,
    ONE_LINE,
    has_line_break,
    may_hold_non_finite,
    non_finite_paths,
)

MAX_RECIPIENTS = 50  # Mailjet's limit per Send API call; a job is one message of one call
MAX_SUBJECT = 255
MAX_ATTACHMENTS_BYTES = 15 * 1024 * 1024
MAX_METADATA_BYTES = 8 * 1024
# Tags, bounded as the hosted APIs bound theirs (SendGrid: 10 categories; Mailgun and
# Resend: short ASCII names): at most 10 per email, each 1-64 characters of this set.
MAX_TAGS = 10
MAX_TAG_LENGTH = 64
TAG_PATTERN = r"^[A-Za-z0-9_.:-]+$"

# Headers Mailjet refuses in `Headers` (send-0011): each has a dedicated property.
FORBIDDEN_HEADERS = frozenset(
    h.lower()
    for h in (
        "From Sender Subject To Cc Bcc Return-Path Delivered-To DKIM-Signature "
        "DomainKey-Status Received-SPF Authentication-Results Received X-Mailjet-Prio "
        "X-Mailjet-Debug User-Agent X-Mailer X-MJ-CustomID X-MJ-EventPayload X-MJ-Vars "
        "X-MJ-TemplateErrorDeliver X-MJ-TemplateErrorReporting X-MJ-TemplateLanguage "
        "X-Mailjet-TrackOpen X-Mailjet-TrackClick X-MJ-TemplateID X-MJ-WorkflowID "
        "X-Feedback-Id X-Mailjet-Segmentation List-Id X-MJ-MID X-MJ-ErrorMessage Date "
        "X-CSA-Complaints Message-Id X-Mailjet-Campaign X-MJ-StatisticsContactsListID"
    ).split()
)


# A plain ASCII dot-atom local part (RFC 5322), the shape nearly every address has.
_DOT_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_MAX_LOCAL = 64
_MAX_ADDRESS = 254


@functools.lru_cache(maxsize=65_536)
def _validated(value: str) -> str | EmailNotValidError:
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        return exc


@functools.lru_cache(maxsize=4096)
def _domain_suffix(domain: str) -> tuple[str, bool] | EmailNotValidError:
    """'@' and `domain` as email-validator normalizes it, and whether that changed nothing;
    or the library's verdict against the domain (judged on a probe address)."""
    probe = _validated("a@" + domain)
    if isinstance(probe, EmailNotValidError):
        return probe
    return probe[1:], probe[2:] == domain


def _normalized_address(value: str) -> str | EmailNotValidError:
    """email-validator's verdict on an address, computed once per distinct domain.

    The library spends ~50 µs an address, nearly all of it checking the domain. Many
    addresses share few domains: for a plain ASCII local part, its check is the regex above
    and the domain's verdict is cached; anything else goes to the library whole. Results
    match the library's (a property test holds them to it).
    """
    local, at, domain = value.rpartition("@")
    if (
        at
        and len(local) <= _MAX_LOCAL
        and len(value) <= _MAX_ADDRESS
        and domain.isascii()
        and _DOT_ATOM.fullmatch(local)
    ):
        verdict = _domain_suffix(domain)
        if isinstance(verdict, EmailNotValidError):
            return verdict
        suffix, unchanged = verdict
        return value if unchanged else local + suffix
    return _validated(value)


# Valid addresses seen lately, as normalized: a sender's address comes back with every
# email it sends, so it skips the checks (a plain dict, emptied when full, costs a unique
# recipient ~0.1 µs; an lru_cache costs it more).
_recent_addresses: dict[str, str] = {}
_MAX_RECENT = 4096


def _check_address(value: str) -> str:
    known = _recent_addresses.get(value)
    if known is not None:
        return known
    result = _normalized_address(value)
    if isinstance(result, EmailNotValidError):
        raise ValueError(f"not a valid email address: {result}")
    if len(_recent_addresses) >= _MAX_RECENT:
        _recent_addresses.clear()
    _recent_addresses[value] = result
    return result


# What the validators check, stated for the OpenAPI (and so for schemathesis).
_BASE64 = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
_HEADERS_SCHEMA: dict[str, Any] = {
    "propertyNames": {"pattern": r"^[!-9;-~]+$", "not": {"enum": sorted(FORBIDDEN_HEADERS)}},
    "additionalProperties": {"type": "string", "pattern": r"^[^\r\n]*$"},
}


def _given(field: str, kind: str) -> dict[str, Any]:
    return {"required": [field], "properties": {field: {"type": kind}}}


_EMAIL_RULES: dict[str, Any] = {
    "allOf": [
        {
            "anyOf": [
                _given("text", "string"),
                _given("html", "string"),
                _given("template_id", "integer"),
            ]
        },
        {"anyOf": [_given("subject", "string"), _given("template_id", "integer")]},
    ]
}
# Checked in `_whole` (cheaper than pydantic's pattern); the OpenAPI states it.
_ONE_LINE: dict[str, Any] = {"pattern": ONE_LINE}


def _json_number(value: Any) -> Any:
    # Lax ints take "42"; JSON Schema's integer is a number (42.0 included), never a string.
    if isinstance(value, str):
        raise ValueError("must be a JSON integer, not a string")
    return value


_NUMERIC = re.compile(r"^\s*-?[0-9.eE+]+\s*$")


def _not_a_number(value: Any) -> Any:
    # pydantic would read a number as Unix time; send_at is an ISO 8601 string.
    if isinstance(value, int | float) or (isinstance(value, str) and _NUMERIC.match(value)):
        raise ValueError("send_at must be an ISO 8601 date-time, e.g. 2030-01-01T09:00:00Z")
    return value


_RESERVED_TLDS = ("arpa", "invalid", "local", "localhost", "onion", "test")
# email-validator refuses special-use domains; stated as a JSON Schema `not` (no (?i) there).
_SPECIAL_USE = "|".join("".join(f"[{c}{c.upper()}]" for c in tld) for tld in _RESERVED_TLDS)
_EMAIL_SCHEMA: dict[str, Any] = {
    "format": "email",
    "not": {"pattern": rf"@(.*\.)?({_SPECIAL_USE})\.?$"},
}

EmailAddress = Annotated[
    str,
    Field(max_length=320, json_schema_extra=_EMAIL_SCHEMA),
    AfterValidator(_check_address),
]


Tag = Annotated[str, Field(min_length=1, max_length=MAX_TAG_LENGTH, pattern=TAG_PATTERN)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Address(_Strict):
    """A mailbox: an address and an optional display name."""

    email: EmailAddress
    name: str | None = Field(default=None, max_length=255, json_schema_extra=_ONE_LINE)


class Attachment(_Strict):
    """A file sent with the email; `content` is base64. With `content_id` it is inline."""

    filename: str = Field(min_length=1, max_length=255)
    content_type: str = Field(min_length=1, max_length=255)
    content: str = Field(min_length=1, json_schema_extra={"pattern": _BASE64})
    content_id: str | None = Field(default=None, min_length=1, max_length=255)

    @field_validator("content")
    @classmethod
    def _base64(cls, value: str) -> str:
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("content must be base64") from None
        return value

    @property
    def size(self) -> int:
        """Decoded size in bytes."""
        return len(self.content) * 3 // 4 - self.content.count("=")


def _stored_json(value: Any, field: str) -> bytes:
    """`value` as the JSON that will be stored (orjson, as every write); a ValueError naming
    `field` when it cannot be, i.e. for an integer beyond 64 bits, which the standard
    library's parser (FastAPI's) accepts."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        raise ValueError(f"{field} must hold integers of at most 64 bits") from None


def _no_nulls(value: Any, path: str = "variables") -> None:
    # Mailjet answers a whole-request HTTP 500 for a JSON null in Variables; NaN and the
    # infinities would reach it as null (orjson writes them so).
    if value is None:
        raise ValueError(f"{path} must not contain null values")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{path} {NON_FINITE_MESSAGE}")
    if isinstance(value, dict):
        for key, item in value.items():
            _no_nulls(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _no_nulls(item, f"{path}[{index}]")


class EmailRequest(_Strict):
    """One email, as an app posts it to `POST /queue`."""

    from_: Address = Field(alias="from")
    to: list[Address] = Field(min_length=1, max_length=MAX_RECIPIENTS)
    cc: list[Address] = Field(default_factory=list, max_length=MAX_RECIPIENTS)
    bcc: list[Address] = Field(default_factory=list, max_length=MAX_RECIPIENTS)
    reply_to: Address | None = None
    subject: str | None = Field(default=None, max_length=MAX_SUBJECT, json_schema_extra=_ONE_LINE)
    text: str | None = None
    html: str | None = None
    headers: dict[str, str] = Field(default_factory=dict, json_schema_extra=_HEADERS_SCHEMA)
    attachments: list[Attachment] = Field(default_factory=list)
    # Below 2^53: a JSON integer may come as a float (42.0), exact only up to there.
    template_id: Annotated[int, Field(gt=0, lt=2**53), BeforeValidator(_json_number)] | None = None
    template_language: StrictBool = False
    variables: dict[str, Any] = Field(default_factory=dict)  # no nulls: see api/openapi.py
    track_opens: Literal["account_default", "disabled", "enabled"] | None = None
    track_clicks: Literal["account_default", "disabled", "enabled"] | None = None
    metadata: dict[str, Any] | None = None
    tags: list[Tag] | None = Field(default=None, max_length=MAX_TAGS)
    send_at: Annotated[datetime, BeforeValidator(_not_a_number)] | None = None

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        populate_by_name=True,
        json_schema_extra=_EMAIL_RULES,
    )

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if name.lower() in FORBIDDEN_HEADERS:
                raise ValueError(f"header {name!r} cannot be set here (Mailjet refuses it)")
            if not name or any(c in name for c in ": \r\n") or not name.isascii():
                raise ValueError(f"header name {name!r} is not valid")
        for name, item in value.items():
            if "\r" in item or "\n" in item:
                raise ValueError(f"header {name!r} must be a single line")
        return value

    @field_validator("variables")
    @classmethod
    def _variables(cls, value: dict[str, Any]) -> dict[str, Any]:
        if value and may_hold_non_finite(_stored_json(value, "variables")):
            _no_nulls(value)
        return value

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return value
        stored = _stored_json(value, "metadata")
        if len(stored) > MAX_METADATA_BYTES:
            raise ValueError(f"metadata must be at most {MAX_METADATA_BYTES} bytes as JSON")
        if b"null" in stored:  # `may_hold_non_finite`, inline on the hot path
            bad = non_finite_paths(value, "metadata")
            if bad:
                raise ValueError(f"{bad[0]} {NON_FINITE_MESSAGE}")
        return value

    @field_validator("tags")
    @classmethod
    def _distinct_tags(cls, value: list[str] | None) -> list[str] | None:
        # A tag given twice is kept once, in the order first given; none at all is no tags.
        return list(dict.fromkeys(value)) if value else None

    @field_validator("send_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("send_at needs a timezone (e.g. 2030-01-01T09:00:00Z)")
        return value

    @model_validator(mode="after")
    def _whole(self) -> EmailRequest:
        # Header injection: CR or LF in the subject or a display name (addresses refuse them).
        # Inline, not a helper per field: this runs for every email (docs/benchmarks.md).
        fields = self.__dict__
        text = fields["subject"]
        if text is not None and ("\n" in text or "\r" in text):
            raise _line_breaks(fields)
        text = fields["from_"].name
        if text is not None and ("\n" in text or "\r" in text):
            raise _line_breaks(fields)
        to, cc, bcc = fields["to"], fields["cc"], fields["bcc"]
        for address in to:
            text = address.name
            if text is not None and ("\n" in text or "\r" in text):
                raise _line_breaks(fields)
        if cc or bcc or fields["reply_to"] is not None:
            if _names_break(fields):
                raise _line_breaks(fields)
        if fields["text"] is None and fields["html"] is None and fields["template_id"] is None:
            raise ValueError("give text, html or template_id")
        if fields["subject"] is None and fields["template_id"] is None:
            raise ValueError("subject is required unless template_id is given")
        if cc or bcc or len(to) > 1:
            _merge_repeats(fields)
        if fields["attachments"] and sum(a.size for a in self.attachments) > MAX_ATTACHMENTS_BYTES:
            raise ValueError("attachments must total at most 15 MB")
        return self

    def recipients(self) -> list[tuple[str, str]]:
        """(kind, lower-cased address) per recipient: To, then Cc, then Bcc, in order (each
        address once: a repeat is merged into its first mention, see `merged`)."""
        found = [("to", address.email.lower()) for address in self.to]
        if self.cc:
            found += [("cc", address.email.lower()) for address in self.cc]
        if self.bcc:
            found += [("bcc", address.email.lower()) for address in self.bcc]
        return found

    def merged(self) -> dict[str, list[dict[str, str]]] | None:
        """For an email that named an address more than once: per position of the recipient
        kept (as a string, for JSON), the later mentions folded into it (kind and address as
        given); None when every address was distinct."""
        found: dict[str, list[dict[str, str]]] | None = self.__dict__.get(_MERGED)
        return found

    def due_at(self) -> datetime | None:
        """When to send: `send_at` if it is in the future, else None (now)."""
        if self.send_at is not None and self.send_at > datetime.now(UTC):
            return self.send_at
        return None

    def to_mailjet(self) -> dict[str, Any]:
        """The Send API v3.1 message for this email (CustomID is added at send time)."""
        # The fields read from `__dict__`, where pydantic keeps them: each `self.x` goes
        # through BaseModel's `__getattr__` hook, a quarter of this method's cost, which
        # the enqueue path pays per email (docs/benchmarks.md, change 25).
        fields = self.__dict__
        message: dict[str, Any] = {
            "From": _mj_address(fields["from_"]),
            "To": list(map(_mj_address, fields["to"])),
        }
        if fields["cc"]:
            message["Cc"] = list(map(_mj_address, fields["cc"]))
        if fields["bcc"]:
            message["Bcc"] = list(map(_mj_address, fields["bcc"]))
        if fields["reply_to"] is not None:
            message["ReplyTo"] = _mj_address(fields["reply_to"])
        for name, key in _AS_GIVEN:
            value = fields[name]
            if value is not None:
                message[key] = value
        if fields["template_language"]:
            message["TemplateLanguage"] = True
        if fields["variables"]:
            message["Variables"] = fields["variables"]
        if fields["headers"]:
            message["Headers"] = fields["headers"]
        if fields["attachments"]:
            attachments = [a for a in self.attachments if a.content_id is None]
            inlined = [a for a in self.attachments if a.content_id is not None]
            if attachments:
                message["Attachments"] = [_mj_attachment(a) for a in attachments]
            if inlined:
                message["InlinedAttachments"] = [_mj_attachment(a) for a in inlined]
        return message


def _names_break(fields: dict[str, Any]) -> bool:
    """Whether a display name in Cc, Bcc or Reply-To holds CR or LF."""
    reply_to = fields["reply_to"]
    if reply_to is not None and has_line_break(reply_to.name):
        return True
    for address in (*fields["cc"], *fields["bcc"]):
        name = address.name
        if name is not None and ("\n" in name or "\r" in name):
            return True
    return False


# Where `_merge_repeats` keeps the mentions it folded: an entry of the instance's __dict__
# beside the fields (pydantic dumps and compares fields only), as a private attribute
# would double the cost of building every email (~1.6 µs).
_MERGED = "_merged"


def _merge_repeats(fields: dict[str, Any]) -> None:
    """Keep each address once, at its first mention (To, then Cc, then Bcc), as Mailjet
    counts it once; note the later mentions under `_MERGED`. At most 50 distinct."""
    mentions = [(kind, a) for kind in ("to", "cc", "bcc") for a in fields[kind]]
    distinct = len({a.email.lower() for _, a in mentions})
    if distinct > MAX_RECIPIENTS:
        raise ValueError(f"at most {MAX_RECIPIENTS} recipients in to, cc and bcc together")
    if distinct == len(mentions):
        return
    positions: dict[str, int] = {}
    kept: dict[str, list[Address]] = {"to": [], "cc": [], "bcc": []}
    merged: dict[str, list[dict[str, str]]] = {}
    for kind, address in mentions:
        key = address.email.lower()
        position = positions.get(key)
        if position is None:
            positions[key] = len(positions)
            kept[kind].append(address)
        else:
            merged.setdefault(str(position), []).append({"kind": kind, "email": address.email})
    fields.update(kept)  # `to` keeps its first address, the first mention of all
    fields[_MERGED] = merged


def _line_breaks(fields: dict[str, Any]) -> ValidationError:
    """The 422 for line breaks in one-line fields, each error at its field."""
    found: list[tuple[tuple[str | int, ...], str]] = []
    if has_line_break(fields["subject"]):
        found.append((("subject",), fields["subject"]))
    for key, alias in (("from_", "from"), ("reply_to", "reply_to")):
        address = fields[key]
        if address is not None and has_line_break(address.name):
            found.append(((alias, "name"), address.name))
    for kind in ("to", "cc", "bcc"):
        for index, address in enumerate(fields[kind]):
            if has_line_break(address.name):
                found.append(((kind, index, "name"), address.name))
    error = PydanticCustomError("line_break", LINE_BREAK_MESSAGE)
    return ValidationError.from_exception_data(
        "EmailRequest", [InitErrorDetails(type=error, loc=loc, input=v) for loc, v in found]
    )


# Fields that go to Mailjet as they are, when given: (our name, the Send API's).
_AS_GIVEN = (
    ("subject", "Subject"),
    ("text", "TextPart"),
    ("html", "HTMLPart"),
    ("template_id", "TemplateID"),
    ("track_opens", "TrackOpens"),
    ("track_clicks", "TrackClicks"),
)


def _mj_address(address: Address) -> dict[str, str]:
    if address.name:
        return {"Email": address.email, "Name": address.name}
    return {"Email": address.email}


def _mj_attachment(attachment: Attachment) -> dict[str, str]:
    result = {
        "ContentType": attachment.content_type,
        "Filename": attachment.filename,
        "Base64Content": attachment.content,
    }
    if attachment.content_id is not None:
        result["ContentID"] = attachment.content_id
    return result
