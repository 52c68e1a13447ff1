"""Mailer's Python client: send email, read statuses, jobs and events, verify webhooks.

    from mailer_client import Client

    with Client("http://127.0.0.1:8000", api_key) as mailer:
        job_id = mailer.send(from_="Shop <noreply@shop.example>", to="ann@example.org",
                             subject="Your order", text="Thanks!")
        for event in mailer.feed():
            ...

`AsyncClient` has the same methods, awaited. The Django email backend is
`mailer_client.django.EmailBackend`.
"""

from mailer_client._wire import Page
from mailer_client.aio import AsyncClient
from mailer_client.client import Client
from mailer_client.errors import (
    ApiError,
    AuthenticationError,
    ConflictError,
    InvalidRequestError,
    MailerError,
    NotFoundError,
    RateLimitedError,
    ServiceUnavailableError,
    TransportError,
)
from mailer_client.retry import RetryPolicy
from mailer_client.webhooks import WebhookVerificationError, verify_webhook

__all__ = [
    "ApiError",
    "AsyncClient",
    "AuthenticationError",
    "Client",
    "ConflictError",
    "InvalidRequestError",
    "MailerError",
    "NotFoundError",
    "Page",
    "RateLimitedError",
    "RetryPolicy",
    "ServiceUnavailableError",
    "TransportError",
    "WebhookVerificationError",
    "verify_webhook",
]
