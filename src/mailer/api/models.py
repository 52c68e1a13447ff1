"""What the API answers, as models for the OpenAPI description (the routes render their
answers with orjson directly; these document them, and the schemathesis run checks that
the answers conform)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

_NUMBER = re.compile(r"^\s*-?[0-9.eE+]+\s*$")


def iso_only(value: Any) -> Any:
    """`value` unless it is a number: pydantic would read it as Unix time."""
    # pydantic reads a number (or a numeric string) as Unix time; the API takes ISO 8601.
    if not isinstance(value, str | datetime) or (isinstance(value, str) and _NUMBER.match(value)):
        raise ValueError("give an ISO 8601 date-time, e.g. 2030-01-01T09:00:00Z")
    return value


def as_utc(value: datetime) -> datetime:
    """`value`, read as UTC when it names no offset."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


IsoDateTime = Annotated[datetime, BeforeValidator(iso_only), AfterValidator(as_utc)]
"""An ISO 8601 date-time (not a Unix time); one without an offset is UTC."""


class _Open(BaseModel):
    # Event views carry type-specific fields (url, error, hard_bounce ...).
    model_config = ConfigDict(extra="allow")


class Event(_Open):
    """A tracking event as apps see it (feed, status timelines, webhooks)."""

    id: str
    type: str | None = Field(description="`email.sent`, `email.opened`, `email.clicked` …")
    mailjet_event: str | None = Field(description="Mailjet's word: sent, open, click …")
    status: str | None
    time: datetime
    job_id: str
    email: str
    message_id: str | None = Field(description="Mailjet's MessageID, a string (exceeds 2^53)")
    test: bool
    metadata: Any
    tags: list[str]


class MergedMention(BaseModel):
    """A later mention of a recipient's address, folded into it (sent once)."""

    kind: str = Field(pattern="^(to|cc|bcc)$")
    email: str


class Recipient(BaseModel):
    """One recipient of a job."""

    email: str
    kind: str = Field(pattern="^(to|cc|bcc)$")
    status: str
    message_id: str | None
    error: Any
    updated_at: datetime
    events: list[Event]
    merged: list[MergedMention]


class Waiting(BaseModel):
    """Why a job not yet sent waits."""

    reason: str = Field(pattern="^(scheduled|retrying|paused|rate_limited)$")
    until: datetime | None
    error: Any = Field(description="With `retrying`: the last attempt's error")


class JobStatus(BaseModel):
    """Where a job stands."""

    job_id: str
    status: str
    recipient_statuses: dict[str, int] = Field(description="How many recipients per status")
    waiting: Waiting | None = Field(description="Why it waits; null once sent or when due")
    attempts: int
    next_attempt_at: datetime | None
    last_error: Any
    metadata: Any
    tags: list[str]
    history: list[Any] = Field(description="What each earlier round (before a retry) ended with")
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None
    recipients: list[Recipient]


class ListedRecipient(BaseModel):
    """A recipient as `GET /jobs` lists it."""

    email: str
    kind: str = Field(pattern="^(to|cc|bcc)$")
    status: str


class JobSummary(BaseModel):
    """A job as `GET /jobs` lists it (`/status/{job_id}` has all of it)."""

    job_id: str
    status: str
    recipient_statuses: dict[str, int]
    recipients: list[ListedRecipient]
    subject: str | None
    tags: list[str]
    metadata: Any
    idempotency_key: str | None
    attempts: int
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None


class JobAction(BaseModel):
    """What an action on a job made of it."""

    job_id: str
    status: str
    send_at: datetime | None = Field(default=None, description="With PATCH: the new time")


class JobList(BaseModel):
    """A page of the app's jobs, newest first."""

    jobs: list[JobSummary]
    next_cursor: str | None = Field(description="Pass as `after` for the next page; null: no more")


class FeedPage(BaseModel):
    """A page of the app's event feed."""

    events: list[Event]
    next_cursor: str
    has_more: bool


class Suppression(BaseModel):
    """An address the app does not send to."""

    email: str
    reason: str
    event_id: str | None
    created_at: datetime
    expires_at: datetime | None = Field(description="When it stops applying; null: never")


class SuppressionPage(BaseModel):
    """A page of the suppression list."""

    suppressions: list[Suppression]
    next_cursor: str | None


class SuppressionChange(BaseModel):
    """One change of an address's suppression: `suppressed` (why, by which event, until
    when) or `reactivated` (why)."""

    action: Literal["suppressed", "reactivated"]
    reason: str
    event_id: str | None
    expires_at: datetime | None
    actor: str = Field(description="`event`, `api`, `cli` or `reprocess`")
    at: datetime


class SuppressionHistory(BaseModel):
    """An address's entry in force (if any) and every change of it, oldest first."""

    email: str
    suppressed: bool
    suppression: Suppression | None
    history: list[SuppressionChange]


class Endpoint(BaseModel):
    """A webhook endpoint (never its secret, but on creation)."""

    id: str
    url: str
    description: str | None
    event_types: list[str] | None
    enabled: bool
    disabled_reason: str | None
    disabled_at: datetime | None
    failing_since: datetime | None
    created_at: datetime
    updated_at: datetime


class NewEndpoint(Endpoint):
    """A created endpoint, with its secret (shown this once)."""

    secret: str


class EndpointList(BaseModel):
    """The app's endpoints."""

    endpoints: list[Endpoint]


class RotatedSecret(BaseModel):
    """An endpoint's new secret."""

    id: str
    secret: str
    previous_secret_expires_at: datetime | None


class Attempt(BaseModel):
    """One webhook delivery attempt."""

    id: int
    delivery_id: str
    event_id: str
    attempt: int
    status_code: int | None
    duration_ms: int
    error: str | None
    response: str | None
    created_at: datetime


class AttemptPage(BaseModel):
    """A page of the attempt log."""

    attempts: list[Attempt]
    next_before: int | None


class QueuedDelivery(BaseModel):
    """A webhook delivery queued."""

    delivery_id: str
    status: str


class Requeued(BaseModel):
    """How many deliveries were queued again."""

    requeued: int


class EventsStored(BaseModel):
    """What became of a Mailjet callback body."""

    received: int
    stored: int
    linked: int


class Health(BaseModel):
    """The service and its database answer."""

    ok: bool


class Ready(BaseModel):
    """`/readyz` when the process can serve."""

    ready: bool = Field(description="true")
    live_workers: int = Field(description="workers with a heartbeat in the last 30 s")


class NotReady(BaseModel):
    """`/readyz` when the process cannot serve (answered with 503 and Retry-After)."""

    ready: bool = Field(description="false")
    reason: str = Field(description="`database_unreachable` or `migrations_pending`")
    message: str


class AuditEntry(BaseModel):
    """One change recorded in the audit log."""

    id: int
    at: datetime
    app_id: str | None
    actor: str = Field(description="`key:<API key id>`, `cli:<user>` or `mailer:<part>`")
    action: str = Field(description="e.g. `key.created`, `endpoint.changed`, `erasure`")
    target: str | None = Field(description="What it was done to (an id)")
    source: str | None = Field(description="The client's IP (HTTP) or the host (CLI)")
    details: dict[str, Any] | None


class AuditPage(BaseModel):
    """A page of the app's audit log, newest first."""

    entries: list[AuditEntry]
    next_before: int | None


class Rates(BaseModel):
    """Shares (0-1, null over nothing): failures of `sent`, engagement (unique) of
    `delivered`."""

    delivered: float | None
    bounced: float | None
    hard_bounced: float | None
    blocked: float | None
    complained: float | None
    unsubscribed: float | None
    opened: float | None
    opened_human: float | None
    clicked: float | None
    clicked_human: float | None


class StatCounts(BaseModel):
    """What happened to the app's emails, per recipient: `accepted` by Mailer, `sent` to
    Mailjet, `delivered` (Mailjet's `sent` event), and what Mailjet's events reported.
    Opens and clicks: every event, the recipients (`_unique`), and by people only
    (`_human`: not a machine such as a mail privacy proxy or a link scanner)."""

    accepted: int
    sent: int
    delivered: int
    bounced_hard: int
    bounced_soft: int = Field(description="Mailjet retries: the recipient is `deferred`")
    blocked: int
    complained: int
    unsubscribed: int
    opened: int
    opened_unique: int
    opened_human: int
    opened_human_unique: int
    clicked: int
    clicked_unique: int
    clicked_human: int
    clicked_human_unique: int
    rates: Rates


class StatPeriod(StatCounts):
    """One hour or day (UTC) from `start`."""

    start: datetime


class Stats(BaseModel):
    """`GET /stats`: every period from `from` to `to` (empty ones as zeros), and the total."""

    model_config = ConfigDict(populate_by_name=True)

    from_: datetime = Field(alias="from")
    to: datetime
    granularity: str
    tag: str | None = Field(description="the tag asked for; null: all the app's emails")
    periods: list[StatPeriod]
    total: StatCounts
