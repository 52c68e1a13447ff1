"""Pure pieces of sending: pack claimed jobs into Send API calls, read Mailjet's answer back.

Nothing here talks to the network or the database, so it is unit-tested directly.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

MAX_RECIPIENTS_PER_CALL = 50
_KIND_KEYS = {"to": "To", "cc": "Cc", "bcc": "Bcc"}


@dataclass(frozen=True)
class Recipient:
    """One recipient row of a claimed job."""

    position: int
    kind: str
    email: str
    status: str


@dataclass
class ClaimedJob:
    """A job this worker holds a lease on."""

    id: uuid.UUID
    app_id: uuid.UUID
    message: dict[str, Any]
    attempts: int
    created_at: datetime
    needs_lookup: bool
    recipients: list[Recipient] = field(default_factory=list)
    # When the app last retried it (`POST /jobs/{id}/retry`): its retries count from there.
    retried_at: datetime | None = None
    lookup_missed: bool = False
    """The last attempt looked the job up, found nothing and waited for Mailjet's index."""
    tags: tuple[str, ...] = ()
    """The app's tags of the job (the stats count its sends under each)."""

    @property
    def custom_id(self) -> str:
        """Mailjet's CustomID for this job: our job id (36 characters, within the 64 allowed)."""
        return str(self.id)

    def sendable(self) -> list[Recipient]:
        """Recipients still to send to (not suppressed, not already answered)."""
        return [r for r in self.recipients if r.status == "queued"]

    def has_to_recipient(self) -> bool:
        """Mailjet needs at least one To; suppression may have removed them all."""
        return any(r.kind == "to" for r in self.sendable())


def build_message(job: ClaimedJob) -> dict[str, Any]:
    """The Send API message for a job: its stored message, less the recipients not to send to,
    tagged with the job id as CustomID."""
    sendable = {(r.kind, r.email) for r in job.sendable()}
    message = dict(job.message)
    for kind, key in _KIND_KEYS.items():
        if key in message:
            kept = [a for a in message[key] if (kind, a["Email"].lower()) in sendable]
            if kept:
                message[key] = kept
            else:
                del message[key]
    message["CustomID"] = job.custom_id
    return message


def pack(
    jobs: Sequence[ClaimedJob], limit: int = MAX_RECIPIENTS_PER_CALL
) -> list[list[ClaimedJob]]:
    """Group jobs into calls of at most `limit` recipients in total, keeping claim order.

    First fit over the open calls: a job joins the first call it fits in, else opens one.
    A job never has more than `limit` recipients (checked at enqueue).
    """
    calls: list[list[ClaimedJob]] = []
    sizes: list[int] = []
    for job in jobs:
        size = len(job.sendable())
        for index, used in enumerate(sizes):
            if used + size <= limit:
                calls[index].append(job)
                sizes[index] += size
                break
        else:
            calls.append([job])
            sizes.append(size)
    return calls


@dataclass(frozen=True)
class AcceptedRecipient:
    """A recipient Mailjet accepted, matched to our row (with its job's app and tags, which
    the stats count it under; app None: both looked up when recorded)."""

    job_id: uuid.UUID
    position: int
    message_id: int | None
    message_uuid: str | None
    app_id: uuid.UUID | None = None
    tags: tuple[str, ...] = ()


def match_accepted(
    job: ClaimedJob, accepted: Iterable[tuple[str, str | None, int, str | None]]
) -> list[AcceptedRecipient]:
    """Match Mailjet's (email, kind, MessageID, UUID) entries to the job's recipients.

    Addresses are compared case-insensitively (Mailjet may normalise them); the kind is used
    when known. A recipient Mailjet does not list (it may fold repeats) is still accepted,
    without a MessageID: events link it later by CustomID and address.
    """
    by_email: dict[str, list[tuple[str | None, int, str | None]]] = {}
    for email, kind, message_id, message_uuid in accepted:
        by_email.setdefault(email.lower(), []).append((kind, message_id, message_uuid))
    matched = []
    for recipient in job.sendable():
        candidates = by_email.get(recipient.email, [])
        chosen = next((c for c in candidates if c[0] in (None, recipient.kind)), None)
        if chosen is None:
            matched.append(
                AcceptedRecipient(job.id, recipient.position, None, None, job.app_id, job.tags)
            )
            continue
        candidates.remove(chosen)
        matched.append(
            AcceptedRecipient(
                job.id, recipient.position, chosen[1], chosen[2], job.app_id, job.tags
            )
        )
    return matched
