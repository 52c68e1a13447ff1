"""Request dependencies: the shared services and the calling app (from its API key)."""

from __future__ import annotations

import re
import uuid
from typing import Annotated

from fastapi import Depends, Header, Request

from mailer.api.errors import ApiError
from mailer.services import Services

_IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9._:\-]{1,200}$")


def services(request: Request) -> Services:
    """The process's shared services (pool, enqueuer, key verifier)."""
    found: Services = request.app.state.services
    return found


# Dependencies are `async def` even when they await nothing: FastAPI runs a plain `def`
# dependency in its thread pool, a thread hop per request (see docs/benchmarks.md).


async def services_dependency(request: Request) -> Services:
    """`services` as a dependency, resolved on the event loop."""
    return services(request)


async def current_app(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> uuid.UUID:
    """The app whose API key authenticates this request; 401 otherwise."""
    scheme, _, presented = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        raise ApiError(
            401,
            "unauthorized",
            "send your API key as `Authorization: Bearer <key>`",
            headers={"WWW-Authenticate": "Bearer"},
        )
    app_id = await services(request).keys.app_for(presented.strip())
    if app_id is None:
        raise ApiError(
            401,
            "unauthorized",
            "unknown or revoked API key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return app_id


async def idempotency_key(
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> str | None:
    """The optional Idempotency-Key header, checked for shape."""
    if idempotency_key is not None and not _IDEMPOTENCY_KEY.match(idempotency_key):
        raise ApiError(
            400,
            "invalid_idempotency_key",
            "Idempotency-Key must be 1-200 characters of letters, digits and . _ : -",
        )
    return idempotency_key


AppId = Annotated[uuid.UUID, Depends(current_app)]
ServicesDep = Annotated[Services, Depends(services_dependency)]
IdempotencyKey = Annotated[str | None, Depends(idempotency_key)]
