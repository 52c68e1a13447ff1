"""The client's exceptions: one hierarchy, each class saying whether a retry may help.

Every answer Mailer refuses raises an `ApiError` (or a subclass by status) that carries
Mailer's JSON error body: `{"error": code, "message": ..., "details": [...]}`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "ApiError",
    "AuthenticationError",
    "ConflictError",
    "InvalidRequestError",
    "MailerError",
    "NotFoundError",
    "RateLimitedError",
    "ServiceUnavailableError",
    "TransportError",
]


class MailerError(Exception):
    """Base of every error this package raises."""

    retryable: bool = False


class TransportError(MailerError):
    """Mailer could not be reached (connection refused, timeout, broken connection), after
    the configured retries. A send may or may not have been stored: retrying it with the
    same Idempotency-Key is safe."""

    retryable = True


class ApiError(MailerError):
    """Mailer answered with an error status.

    Attributes:
        status: the HTTP status code.
        code: Mailer's stable error code (`error` in the body), e.g. ``invalid_request``.
        message: Mailer's human-readable message.
        details: per-field problems, ``[{"field": "to[0].email", "message": ...}]``.
        body: the whole decoded JSON body (or ``{}`` if the answer was not JSON).
        headers: the answer's headers.
    """

    def __init__(
        self,
        status: int,
        body: Mapping[str, Any],
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.status = status
        self.body: dict[str, Any] = dict(body)
        self.headers: dict[str, str] = dict(headers or {})
        self.code: str = str(body.get("error", "http_error"))
        self.message: str = str(body.get("message", f"HTTP {status}"))
        raw_details = body.get("details")
        self.details: list[dict[str, Any]] = (
            [d for d in raw_details if isinstance(d, dict)] if isinstance(raw_details, list) else []
        )
        super().__init__(self._describe())

    def _describe(self) -> str:
        text = f"{self.status} {self.code}: {self.message}"
        if self.details:
            fields = "; ".join(f"{d.get('field')}: {d.get('message')}" for d in self.details)
            text += f" ({fields})"
        return text


class AuthenticationError(ApiError):
    """401/403: the API key is missing, unknown or revoked."""


class InvalidRequestError(ApiError):
    """400/413/422: the request is wrong; `details` names each bad field. Not retryable."""


class NotFoundError(ApiError):
    """404: no such job (or it belongs to another app)."""


class ConflictError(ApiError):
    """409: e.g. an Idempotency-Key reused with a different body."""


class RateLimitedError(ApiError):
    """429, still refused after the retries."""

    retryable = True


class ServiceUnavailableError(ApiError):
    """5xx, still refused after the retries (for 503) or at once (other 5xx)."""

    retryable = True


_BY_STATUS: dict[int, type[ApiError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    403: AuthenticationError,
    404: NotFoundError,
    409: ConflictError,
    413: InvalidRequestError,
    422: InvalidRequestError,
    429: RateLimitedError,
}


def error_for(status: int, body: Mapping[str, Any], headers: Mapping[str, str]) -> ApiError:
    """The exception for an error answer."""
    cls = _BY_STATUS.get(status)
    if cls is None:
        cls = ServiceUnavailableError if status >= 500 else ApiError
    return cls(status, body, headers)
