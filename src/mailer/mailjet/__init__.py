"""Async client for Mailjet: Send API v3.1, message lookup, event callback registration.

This package is the mailer's provider boundary. It never retries; its errors say whether a
retry may help (``retryable``) and whether a send may have happened (``outcome_unknown``).
"""

from mailer.mailjet.client import (
    DEFAULT_MAX_CONNECTIONS,
    EVENT_TYPES,
    ClientTimeouts,
    MailjetClient,
)
from mailer.mailjet.errors import (
    MailjetConnectionError,
    MailjetError,
    MailjetNotFound,
    MailjetRateLimited,
    MailjetRequestRejected,
    MailjetServerError,
    MailjetTimeout,
    MailjetUnexpectedResponse,
    error_from_response,
)
from mailer.mailjet.models import (
    AcceptedRecipient,
    DomainDns,
    EventCallback,
    LookedUpMessage,
    MailjetSender,
    MessageAccepted,
    MessageError,
    MessageEvent,
    MessageRejected,
    MessageResult,
    RecipientKind,
    SendResponse,
)

__all__ = [
    "DEFAULT_MAX_CONNECTIONS",
    "EVENT_TYPES",
    "AcceptedRecipient",
    "ClientTimeouts",
    "DomainDns",
    "EventCallback",
    "LookedUpMessage",
    "MailjetClient",
    "MailjetConnectionError",
    "MailjetError",
    "MailjetNotFound",
    "MailjetRateLimited",
    "MailjetRequestRejected",
    "MailjetSender",
    "MailjetServerError",
    "MailjetTimeout",
    "MailjetUnexpectedResponse",
    "MessageAccepted",
    "MessageError",
    "MessageEvent",
    "MessageRejected",
    "MessageResult",
    "RecipientKind",
    "SendResponse",
    "error_from_response",
]
