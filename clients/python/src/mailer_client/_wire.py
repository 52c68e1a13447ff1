"""What the sync and async clients share: request bodies, answers, pages."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import parseaddr
from typing import Any

import httpx

from mailer_client.errors import error_for

USER_AGENT = "mailer-client-python/0.1.0"

# Address fields of an email, and whether each holds a list.
_ADDRESS_FIELDS = {"from": False, "reply_to": False, "to": True, "cc": True, "bcc": True}

AddressLike = str | Mapping[str, Any]


@dataclass(frozen=True)
class Page:
    """One page of a cursor-paged list (`/feed`, `/jobs`).

    Attributes:
        items: the page's events or jobs, oldest first.
        next_cursor: pass as `after` for the next page (also when caught up: poll later).
        has_more: False when this page reached the end for now.
    """

    items: list[dict[str, Any]]
    next_cursor: str | None
    has_more: bool


def new_idempotency_key() -> str:
    """A fresh Idempotency-Key (Mailer accepts 1-200 of ``A-Za-z0-9._:-``)."""
    return f"mc_{uuid.uuid4().hex}"


def address(value: AddressLike) -> dict[str, Any]:
    """An address as Mailer takes it: ``"Ann <ann@x.org>"`` or ``{"email": ..., "name": ...}``."""
    if isinstance(value, str):
        name, email = parseaddr(value)
        if not email:
            email = value
        return {"email": email, "name": name} if name else {"email": email}
    return dict(value)


def email_body(email: Mapping[str, Any] | None, fields: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON of one email from a mapping and/or keyword fields (``from_`` for ``from``);
    addresses may be strings."""
    body: dict[str, Any] = dict(email or {})
    for name, value in fields.items():
        body["from" if name == "from_" else name] = value
    for name, many in _ADDRESS_FIELDS.items():
        value = body.get(name)
        if value is None:
            continue
        if many:
            items = [value] if isinstance(value, str | Mapping) else list(value)
            body[name] = [address(item) for item in items]
        else:
            body[name] = address(value)
    send_at = body.get("send_at")
    if isinstance(send_at, datetime):
        body["send_at"] = send_at.isoformat()
    return body


def batch_body(emails: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The JSON of `POST /queue/batch`."""
    return {"emails": [email_body(email, {}) for email in emails]}


def decoded(response: httpx.Response) -> Any:
    """The answer's JSON; raises the matching `ApiError` for an error status."""
    try:
        body = response.json() if response.content else {}
    except ValueError:
        body = {}
    if response.is_error:
        mapping = body if isinstance(body, dict) else {}
        if not mapping:
            mapping = {"error": "http_error", "message": response.text[:500]}
        raise error_for(response.status_code, mapping, dict(response.headers))
    return body


def job_id_of(body: Any) -> str:
    """The job id of a `POST /queue` answer."""
    job_id: str = body["job_id"]
    return job_id


def job_ids_of(body: Any) -> list[str]:
    """The job ids of a `POST /queue/batch` answer, in request order."""
    return [str(job["job_id"]) for job in body["jobs"]]


def page_of(body: Any, key: str) -> Page:
    """A page from a cursor-paged answer whose items are under `key`."""
    # `/jobs` and `/suppressions` have no `has_more`: their cursor is null on the last page.
    cursor = body.get("next_cursor")
    return Page(
        items=list(body.get(key, [])),
        next_cursor=cursor,
        has_more=bool(body.get("has_more", cursor is not None)),
    )


def list_params(
    after: str | None,
    limit: int,
    filters: Mapping[str, str | int | datetime | Iterable[str] | None],
) -> dict[str, str | int]:
    """Query parameters of a paged list; lists are comma-joined, datetimes ISO 8601."""
    params: dict[str, str | int] = {"limit": limit}
    if after is not None:
        params["after"] = after
    for name, value in filters.items():
        if value is None:
            continue
        if isinstance(value, datetime):
            params[name] = value.isoformat()
        elif isinstance(value, str | int):
            params[name] = value
        else:
            params[name] = ",".join(value)
    return params


def auth_headers(api_key: str) -> dict[str, str]:
    """The headers every request carries."""
    return {"Authorization": f"Bearer {api_key}", "User-Agent": USER_AGENT}
