"""Request dependencies: the shared services and the calling app (from its API key)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar, get_type_hints

from fastapi import Depends, Header, Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope

from mailer.api.errors import ApiError, invalid_fields, invalid_request
from mailer.apps.access import READ, SEND, WEBHOOKS, Grant
from mailer.audit import Actor
from mailer.delivery.textcheck import NUL_ESCAPE, NUL_MESSAGE, nul_paths
from mailer.metrics import count
from mailer.ops.activity import ACTIVITY
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


async def grant_for_authorization(request: Request, authorization: str | None) -> Grant:
    """What the API key in this `Authorization` header value may do; 401 otherwise."""
    scheme, _, presented = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        raise ApiError(
            401,
            "unauthorized",
            "send your API key as `Authorization: Bearer <key>`",
            headers={"WWW-Authenticate": "Bearer"},
        )
    grant = await services(request).keys.grant_for(presented.strip())
    if grant is None:
        raise ApiError(
            401,
            "unauthorized",
            "unknown or revoked API key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return grant


def missing_scope(scope: str) -> ApiError:
    """The 403 for a key without `scope`."""
    return ApiError(
        403,
        "missing_scope",
        f"this API key lacks the `{scope}` scope (create one with it: "
        f"`mailer apps keys create APP --scope {scope}`)",
        scope=scope,
    )


def checked_idempotency_key(value: str | None) -> str | None:
    """An Idempotency-Key header value, checked for shape; 400 otherwise."""
    if value is not None and not _IDEMPOTENCY_KEY.match(value):
        raise ApiError(
            400,
            "invalid_idempotency_key",
            "Idempotency-Key must be 1-200 characters of letters, digits and . _ : -",
        )
    return value


def scoped_app(scope: str) -> Callable[..., Awaitable[uuid.UUID]]:
    """A dependency: the app whose API key authenticates this request (401 otherwise),
    if the key has `scope` (403 otherwise)."""

    async def app_with_scope(
        request: Request, authorization: Annotated[str | None, Header()] = None
    ) -> uuid.UUID:
        grant = await grant_for_authorization(request, authorization)
        if scope not in grant.scopes:
            raise missing_scope(scope)
        return grant.app_id

    app_with_scope.__name__ = f"app_with_{scope}_scope"
    return app_with_scope


@dataclass(frozen=True, slots=True)
class Caller:
    """The calling app, and who it is for the audit log (its key, its IP)."""

    app_id: uuid.UUID
    actor: Actor


def scoped_caller(scope: str) -> Callable[..., Awaitable[Caller]]:
    """As :func:`scoped_app`, with the key and client address that changes are audited
    under."""

    async def caller_with_scope(
        request: Request, authorization: Annotated[str | None, Header()] = None
    ) -> Caller:
        grant = await grant_for_authorization(request, authorization)
        if scope not in grant.scopes:
            raise missing_scope(scope)
        ip = request.client.host if request.client is not None else None
        return Caller(grant.app_id, Actor.key(grant.key_id, ip))

    caller_with_scope.__name__ = f"caller_with_{scope}_scope"
    return caller_with_scope


@dataclass(frozen=True, slots=True)
class Enqueuing:
    """What the enqueue routes need: the calling app, the services, the Idempotency-Key."""

    app_id: uuid.UUID
    services: Services
    idempotency_key: str | None
    sender_domains: frozenset[str] | None = None


async def enqueuing(
    request: Request, authorization: str | None, idempotency_key: str | None
) -> Enqueuing:
    """The calling app (401 without a valid key, 403 without the `send` scope), the
    services and the checked Idempotency-Key (400 if malformed), checked in that order,
    from the request's `Authorization` and `Idempotency-Key` values."""
    grant = await grant_for_authorization(request, authorization)
    if SEND not in grant.scopes:
        raise missing_scope(SEND)
    key = checked_idempotency_key(idempotency_key)
    return Enqueuing(grant.app_id, services(request), key, grant.sender_domains)


def enqueuing_headers(scope: Scope) -> tuple[str | None, str | None, str | None]:
    """The `Authorization`, `Idempotency-Key` and `Content-Type` values of a request, as
    Starlette's `request.headers.get` reads them (the first of each; names arrive
    lowercased from the server), in one pass over the headers instead of three."""
    authorization = idempotency_key = content_type = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            if authorization is None:
                authorization = value.decode("latin-1")
        elif name == b"content-type":
            if content_type is None:
                content_type = value.decode("latin-1")
        elif name == b"idempotency-key" and idempotency_key is None:
            idempotency_key = value.decode("latin-1")
    return authorization, idempotency_key, content_type


_CALLER = "mailer.enqueuing"

Body = TypeVar("Body", bound=BaseModel)
EnqueueEndpoint = Callable[[Any, Request], Awaitable[Response]]


class EnqueuingRoute(APIRoute):
    """A route for the enqueue endpoints, the hot path, handled without FastAPI's
    per-request machinery (which costs as much as the request's own work there, see
    docs/benchmarks.md).

    The caller is resolved first (401, then 400, from `enqueuing`), then the body is parsed
    and validated in one pass by pydantic (422 naming the fields), then the endpoint is
    called as `endpoint(body, request)`; it takes its caller with `caller_of`. FastAPI
    still documents the route from the endpoint's signature, and its middleware and error
    handlers still apply: through the usual stack, or through `api.fastpath`, which
    calls this handler straight from the server and does what those layers do.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """The handler FastAPI wraps in its request/response plumbing."""
        endpoint: EnqueueEndpoint = self.endpoint
        model = _body_model(endpoint)

        async def handle_enqueuing(request: Request) -> Response:
            authorization, idempotency_key, content_type = enqueuing_headers(request.scope)
            caller = await enqueuing(request, authorization, idempotency_key)
            request.scope[_CALLER] = caller
            raw = await read_body(request.receive)
            try:
                body = json_body(model, content_type, raw)
                if NUL_ESCAPE in raw:  # `may_hold_nul`, inline: the walk is for the rare body
                    found = nul_paths(body)
                    if found:
                        raise invalid_fields([{"field": f, "message": NUL_MESSAGE} for f in found])
            except ApiError:
                ACTIVITY.add("emails_rejected")
                count.enqueued(caller.app_id, "rejected")
                raise
            return await endpoint(body, request)

        return handle_enqueuing


async def read_body(receive: Receive) -> bytes:
    """A request's whole body, read as Starlette's `Request.body()` reads it (a disconnect
    raises `ClientDisconnect`), without its async generator and its cache: a few µs of
    each enqueue request."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.request":
            chunk = message.get("body", b"")
            if chunk:
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        elif message["type"] == "http.disconnect":
            raise ClientDisconnect()
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def json_body(model: type[Body], content_type: str | None, raw: bytes) -> Body:
    """`raw` parsed and validated as `model`; the 422 `invalid_request` otherwise.

    As FastAPI reads a JSON body: the Content-Type must be JSON (`application/json` or
    `application/*+json`) and an empty body is a missing one.
    """
    if not raw:
        problem = {"loc": ("body",), "msg": "Field required"}
        raise invalid_request([problem])
    if not _is_json(content_type):
        problem = {
            "loc": ("body",),
            "msg": "send the body as JSON (Content-Type: application/json)",
        }
        raise invalid_request([problem])
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise invalid_request(exc.errors(include_url=False, include_input=False)) from None


def _is_json(content_type: str | None) -> bool:
    media_type = (content_type or "").partition(";")[0].strip().lower()
    kind, _, subtype = media_type.partition("/")
    return kind == "application" and (subtype == "json" or subtype.endswith("+json"))


def _body_model(endpoint: Callable[..., Any]) -> type[BaseModel]:
    hints = get_type_hints(endpoint)
    hints.pop("return", None)
    models = [t for t in hints.values() if isinstance(t, type) and issubclass(t, BaseModel)]
    if len(models) != 1:
        raise TypeError(f"{endpoint.__name__} must take exactly one body model")
    return models[0]


def caller_of(request: Request) -> Enqueuing:
    """The caller that `EnqueuingRoute` resolved for this request."""
    caller: Enqueuing = request.scope[_CALLER]
    return caller


def _header_parameter(name: str, title: str, **constraints: Any) -> dict[str, Any]:
    schema = {"type": "string", "title": title, **constraints}
    return {"in": "header", "name": name, "required": False, "schema": schema}


# The headers `enqueuing` reads, documented as FastAPI documents header parameters.
ENQUEUING_OPENAPI: dict[str, Any] = {
    "parameters": [
        _header_parameter("authorization", "Authorization"),
        _header_parameter("Idempotency-Key", "Idempotency-Key", pattern=_IDEMPOTENCY_KEY.pattern),
    ]
}

# The calling app, by the scope its key needs for the route.
ReadApp = Annotated[uuid.UUID, Depends(scoped_app(READ))]
SendApp = Annotated[uuid.UUID, Depends(scoped_app(SEND))]
WebhooksApp = Annotated[uuid.UUID, Depends(scoped_app(WEBHOOKS))]
# The same, for routes that change something (audited).
SendCaller = Annotated[Caller, Depends(scoped_caller(SEND))]
WebhooksCaller = Annotated[Caller, Depends(scoped_caller(WEBHOOKS))]
ServicesDep = Annotated[Services, Depends(services_dependency)]
