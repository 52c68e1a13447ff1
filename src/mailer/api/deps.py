"""Request dependencies: the shared services and the calling app (from its API key)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, Request, Response
from fastapi.routing import APIRoute

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


async def app_for_authorization(request: Request, authorization: str | None) -> uuid.UUID:
    """The app whose API key is in this `Authorization` header value; 401 otherwise."""
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


def checked_idempotency_key(value: str | None) -> str | None:
    """An Idempotency-Key header value, checked for shape; 400 otherwise."""
    if value is not None and not _IDEMPOTENCY_KEY.match(value):
        raise ApiError(
            400,
            "invalid_idempotency_key",
            "Idempotency-Key must be 1-200 characters of letters, digits and . _ : -",
        )
    return value


async def current_app(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> uuid.UUID:
    """The app whose API key authenticates this request; 401 otherwise."""
    return await app_for_authorization(request, authorization)


@dataclass(frozen=True, slots=True)
class Enqueuing:
    """What the enqueue routes need: the calling app, the services, the Idempotency-Key."""

    app_id: uuid.UUID
    services: Services
    idempotency_key: str | None


async def enqueuing(request: Request) -> Enqueuing:
    """The calling app (401 without a valid key), the services and the checked
    Idempotency-Key (400 if malformed), checked in that order."""
    headers = request.headers
    app_id = await app_for_authorization(request, headers.get("authorization"))
    key = checked_idempotency_key(headers.get("idempotency-key"))
    return Enqueuing(app_id, services(request), key)


_CALLER = "mailer.enqueuing"


class EnqueuingRoute(APIRoute):
    """A route that resolves its caller (`enqueuing`) before FastAPI reads the body, so a
    401 or 400 comes before the body's 422; the endpoint takes it with `caller_of`.

    The enqueue routes are the hot path. FastAPI resolves a dependency at a cost
    comparable to the request's own work (docs/benchmarks.md), and a route class is the
    hook FastAPI offers for running code around a route's handler.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """FastAPI's handler for this route, run once the caller is known."""
        handler = super().get_route_handler()

        async def handle_enqueuing(request: Request) -> Response:
            request.scope[_CALLER] = await enqueuing(request)
            return await handler(request)

        return handle_enqueuing


def caller_of(request: Request) -> Enqueuing:
    """The caller that `EnqueuingRoute` resolved for this request."""
    caller: Enqueuing = request.scope[_CALLER]
    return caller


def _header_parameter(name: str, title: str) -> dict[str, Any]:
    schema = {"anyOf": [{"type": "string"}, {"type": "null"}], "title": title}
    return {"in": "header", "name": name, "required": False, "schema": schema}


# The headers `enqueuing` reads, documented as FastAPI documents header parameters.
ENQUEUING_OPENAPI: dict[str, Any] = {
    "parameters": [
        _header_parameter("authorization", "Authorization"),
        _header_parameter("Idempotency-Key", "Idempotency-Key"),
    ]
}

AppId = Annotated[uuid.UUID, Depends(current_app)]
ServicesDep = Annotated[Services, Depends(services_dependency)]
