"""Errors raised by the Mailjet client, and the classification of failed answers.

Every failure leaves the client as a subclass of :class:`MailjetError`. Two flags tell the
caller what to do next:

- ``retryable``: the same request may succeed later (rate limits, 5xx, timeouts, network).
- ``outcome_unknown``: Mailjet may have accepted a send even though no usable answer came
  back, so reconcile by CustomID (``find_messages_by_custom_id``) before sending again.

=========================  =========  ===============  ==========================================
class                      retryable  outcome_unknown  when
=========================  =========  ===============  ==========================================
MailjetRateLimited         yes        no               HTTP 429 (HTML or JSON body)
MailjetServerError         yes        yes              HTTP 5xx, any body (JSON, HTML, empty)
MailjetTimeout             yes        yes              no complete answer within the timeout
MailjetConnectionError     yes        no / yes         refused or failed connect (not sent) /
                                                       connection lost mid-request (unknown)
MailjetUnexpectedResponse  yes        yes              an answer of a shape Mailjet never sends
MailjetRequestRejected     no         no               whole-request 4xx (mj-0002, send-0015, 401,
                                                       403 ...): fix the request, don't resend it
MailjetNotFound            no         no               404 on a REST v3 resource
=========================  =========  ===============  ==========================================

A send whose body carries a ``Messages`` array is never an error: the client returns the
per-message results whatever the HTTP status.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from mailer.queue.retry_after import parse_retry_after

__all__ = [
    "MailjetConnectionError",
    "MailjetError",
    "MailjetNotFound",
    "MailjetRateLimited",
    "MailjetRequestRejected",
    "MailjetServerError",
    "MailjetTimeout",
    "MailjetUnexpectedResponse",
    "error_from_response",
]

_DETAIL_MAX = 300
_REST_CODE = re.compile(r"^(MJ\d+)\b")


class MailjetError(Exception):
    """Base class of every error the Mailjet client raises.

    ``status`` is the HTTP status when an answer arrived, else ``None``; ``detail`` is a short
    human-readable description. Class attributes give the default ``retryable`` and
    ``outcome_unknown``; an instance may override them.
    """

    retryable: bool = False
    outcome_unknown: bool = False
    # Mailjet's `ErrorIdentifier` of the answer, when it gave one (its support asks for it).
    identifier: str | None = None

    def __init__(
        self,
        detail: str,
        *,
        status: int | None = None,
        retryable: bool | None = None,
        outcome_unknown: bool | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status
        if retryable is not None:
            self.retryable = retryable
        if outcome_unknown is not None:
            self.outcome_unknown = outcome_unknown


class MailjetRateLimited(MailjetError):
    """HTTP 429. ``retry_after`` holds the server's ``Retry-After`` in seconds, if it sent one."""

    retryable = True

    def __init__(self, detail: str, *, status: int = 429, retry_after: float | None = None):
        super().__init__(detail, status=status)
        self.retry_after = retry_after


class MailjetServerError(MailjetError):
    """HTTP 5xx. Mailjet may or may not have processed the request."""

    retryable = True
    outcome_unknown = True

    def __init__(self, detail: str, *, status: int, body: str = "") -> None:
        super().__init__(detail, status=status)
        self.body = body


class MailjetTimeout(MailjetError):
    """No complete answer before the client timeout; the request may have been processed."""

    retryable = True
    outcome_unknown = True


class MailjetConnectionError(MailjetError):
    """The HTTP exchange failed at the network level.

    ``outcome_unknown`` is false when no connection could be made (refused, DNS, connect
    timeout: nothing was sent) and true when the connection broke after the request went out.
    """

    retryable = True


class MailjetUnexpectedResponse(MailjetError):
    """An answer Mailjet's API does not produce (e.g. 200 without JSON, or a short ``Messages``)."""

    retryable = True
    outcome_unknown = True

    def __init__(self, detail: str, *, status: int | None, body: str = "") -> None:
        super().__init__(detail, status=status)
        self.body = body


class MailjetRequestRejected(MailjetError):
    """The whole request was refused (4xx). Resending it unchanged will fail the same way.

    ``code`` is Mailjet's ``ErrorCode`` (``send-0015``, ``mj-0002``) or the ``MJnn`` prefix of a
    REST v3 ``ErrorMessage``; a 401 usually has none. ``body`` is the parsed JSON body or, when
    it was not JSON, its text.
    """

    def __init__(
        self,
        detail: str,
        *,
        status: int,
        code: str | None = None,
        message: str = "",
        related_to: list[str] | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(detail, status=status)
        self.code = code
        self.message = message
        self.related_to = related_to or []
        self.body = body


class MailjetNotFound(MailjetRequestRejected):
    """HTTP 404 on a REST v3 resource (``Object not found``)."""


def _loads(body: bytes) -> Any:
    if not body:
        return None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def _snippet(body: bytes) -> str:
    return body[:_DETAIL_MAX].decode("utf-8", "replace").strip()


def error_from_response(
    status: int, body: bytes, headers: Mapping[str, str] | None = None
) -> MailjetError:
    """Build the error for an answer that has no usable ``Messages`` array, with its
    ``ErrorIdentifier`` as ``identifier`` when the body has one.

    Pure function of the HTTP status, raw body and headers, so it is unit-testable.
    """
    error = _error_from_response(status, body, headers)
    data = _loads(body)
    identifier = data.get("ErrorIdentifier") if isinstance(data, dict) else None
    if isinstance(identifier, str) and identifier:
        error.identifier = identifier
    return error


def _error_from_response(
    status: int, body: bytes, headers: Mapping[str, str] | None
) -> MailjetError:
    data = _loads(body)
    fields: Mapping[str, Any] = data if isinstance(data, dict) else {}
    message = fields.get("ErrorMessage")
    message = message if isinstance(message, str) else ""
    text = message or _snippet(body)

    if status == 429:
        retry_after = parse_retry_after((headers or {}).get("Retry-After"))
        return MailjetRateLimited(f"HTTP 429 rate limited: {text}", retry_after=retry_after)
    if status >= 500:
        return MailjetServerError(
            f"HTTP {status} server error: {text or '(empty body)'}",
            status=status,
            body=_snippet(body),
        )
    if 400 <= status < 500:
        code = fields.get("ErrorCode")
        if not isinstance(code, str) or not code:
            match = _REST_CODE.match(message)
            code = match.group(1) if match else None
        related = fields.get("ErrorRelatedTo")
        related_to = [str(r) for r in related] if isinstance(related, list) else []
        cls = MailjetNotFound if status == 404 else MailjetRequestRejected
        prefix = f"HTTP {status}" + (f" {code}" if code else "")
        return cls(
            f"{prefix}: {text or '(empty body)'}",
            status=status,
            code=code,
            message=message,
            related_to=related_to,
            body=data if data is not None else _snippet(body),
        )
    return MailjetUnexpectedResponse(
        f"HTTP {status}: unexpected answer: {text or '(empty body)'}",
        status=status,
        body=_snippet(body),
    )
