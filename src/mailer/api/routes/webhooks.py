"""`/webhooks`: an app's webhook endpoints, their attempt log, and replay."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import AwareDatetime, BaseModel, BeforeValidator, Field, StrictBool

from mailer.api.deps import ServicesDep, WebhooksApp, WebhooksCaller
from mailer.api.errors import ApiError
from mailer.api.models import (
    AttemptPage,
    Endpoint,
    EndpointList,
    NewEndpoint,
    QueuedDelivery,
    Requeued,
    RotatedSecret,
    iso_only,
)
from mailer.api.responses import Json
from mailer.services import Services
from mailer.vault import SecretBox
from mailer.webhooks import endpoints
from mailer.webhooks.endpoints import Changes, InvalidEndpoint, endpoint_view
from mailer.webhooks.outbox import EVENT_TYPES, OLD_EVENT_TYPES
from mailer.webhooks.rows import Endpoint as EndpointRow

router = APIRouter(prefix="/webhooks", tags=["webhooks"])


# The shape `endpoints.check_url` accepts, stated for the OpenAPI (it checks it itself).
_URL: dict[str, Any] = {"pattern": r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,4})?(/[^\s\u0000]*)?$"}
# Old names are still accepted (`email.deferred` is `email.delivery_delayed`).
_TYPES: dict[str, Any] = {"items": {"enum": sorted(EVENT_TYPES | set(OLD_EVENT_TYPES))}}


class EndpointIn(BaseModel):
    """A new endpoint; without `event_types` it receives every event type."""

    url: str = Field(max_length=2048, json_schema_extra=_URL)
    event_types: list[str] | None = Field(
        default=None, min_length=1, max_length=50, json_schema_extra=_TYPES
    )
    description: str | None = Field(default=None, max_length=500)


class EndpointPatch(BaseModel):
    """Fields to change; `event_types: null` means every event type."""

    url: str | None = Field(default=None, max_length=2048, json_schema_extra=_URL)
    event_types: list[str] | None = Field(
        default=None, min_length=1, max_length=50, json_schema_extra=_TYPES
    )
    description: str | None = Field(default=None, max_length=500)
    enabled: StrictBool | None = None


class RecoverIn(BaseModel):
    """Re-queue the deliveries that failed since this time."""

    since: Annotated[AwareDatetime, BeforeValidator(iso_only)]


def _id(value: str, what: str = "webhook endpoint") -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise ApiError(404, "not_found", f"no {what} {value}") from None


def _found(row: EndpointRow | None, endpoint_id: str) -> EndpointRow:
    if row is None:
        raise ApiError(404, "not_found", f"no webhook endpoint {endpoint_id}")
    return row


def _box(services: Services) -> SecretBox:
    """What seals new secrets; 503 where the operator set none (DATABASE_URL without
    MAILER_SECRET_KEY): a secret is never stored in clear."""
    if services.box is None:
        raise ApiError(
            503,
            "secret_key_missing",
            "webhook endpoints are unavailable on this server: its operator has not set "
            "MAILER_SECRET_KEY, which seals their secrets",
        )
    return services.box


def _invalid(exc: InvalidEndpoint) -> ApiError:
    return ApiError(422, "invalid_request", str(exc))


@router.post("", status_code=201, response_model=NewEndpoint)
async def create_endpoint(body: EndpointIn, caller: WebhooksCaller, services: ServicesDep) -> Json:
    """Create an endpoint. The answer holds its `secret`, shown this once."""
    try:
        row, secret = await endpoints.create(
            services.pool,
            caller.app_id,
            body.url,
            body.event_types,
            body.description,
            targets=services.targets,
            box=_box(services),
            actor=caller.actor,
        )
    except InvalidEndpoint as exc:
        raise _invalid(exc) from None
    return Json({**endpoint_view(row), "secret": secret}, 201)


@router.get("", response_model=EndpointList)
async def list_endpoints(app_id: WebhooksApp, services: ServicesDep) -> Json:
    """The app's endpoints."""
    rows = await endpoints.list_for(services.pool, app_id)
    return Json({"endpoints": [endpoint_view(r) for r in rows]})


@router.get("/{endpoint_id}", response_model=Endpoint)
async def get_endpoint(endpoint_id: str, app_id: WebhooksApp, services: ServicesDep) -> Json:
    """One endpoint, with why it is disabled if it is."""
    row = await endpoints.get(services.pool, app_id, _id(endpoint_id))
    return Json(endpoint_view(_found(row, endpoint_id)))


@router.patch("/{endpoint_id}", response_model=Endpoint)
async def update_endpoint(
    endpoint_id: str, body: EndpointPatch, caller: WebhooksCaller, services: ServicesDep
) -> Json:
    """Change the url, event types, description, or enable/disable the endpoint."""
    given = body.model_fields_set
    changes = Changes(
        url=body.url,
        description=body.description,
        event_types=body.event_types,
        all_event_types="event_types" in given and body.event_types is None,
        enabled=body.enabled,
    )
    try:
        row = await endpoints.update(
            services.pool,
            caller.app_id,
            _id(endpoint_id),
            changes,
            targets=services.targets,
            actor=caller.actor,
        )
    except InvalidEndpoint as exc:
        raise _invalid(exc) from None
    return Json(endpoint_view(_found(row, endpoint_id)))


@router.delete("/{endpoint_id}", status_code=204)
async def delete_endpoint(
    endpoint_id: str, caller: WebhooksCaller, services: ServicesDep
) -> Response:
    """Delete an endpoint, its pending deliveries and its log."""
    if not await endpoints.delete(services.pool, caller.app_id, _id(endpoint_id), caller.actor):
        raise ApiError(404, "not_found", f"no webhook endpoint {endpoint_id}")
    # No body at all: a 204 has no Content-Length, so even `null` broke the connection.
    return Response(status_code=204)


@router.post("/{endpoint_id}/rotate-secret", response_model=RotatedSecret)
async def rotate_secret(endpoint_id: str, caller: WebhooksCaller, services: ServicesDep) -> Json:
    """A new secret; the previous one keeps signing (beside it) for 24 hours."""
    rotated = await endpoints.rotate_secret(
        services.pool, caller.app_id, _id(endpoint_id), _box(services), caller.actor
    )
    if rotated is None:
        raise ApiError(404, "not_found", f"no webhook endpoint {endpoint_id}")
    row, secret = rotated
    return Json(
        {
            "id": str(row.id),
            "secret": secret,
            "previous_secret_expires_at": row.previous_expires_at,
        }
    )


@router.get("/{endpoint_id}/attempts", response_model=AttemptPage)
async def list_attempts(
    endpoint_id: str,
    app_id: WebhooksApp,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: Annotated[int | None, Query(ge=1, lt=2**63)] = None,
) -> Json:
    """The attempt log, newest first; pass `next_before` as `before` for the next page."""
    parsed = _id(endpoint_id)
    _found(await endpoints.get(services.pool, app_id, parsed), endpoint_id)
    page = await endpoints.attempts(services.pool, app_id, parsed, before=before, limit=limit)
    next_before = page[-1]["id"] if len(page) == limit else None
    return Json({"attempts": page, "next_before": next_before})


@router.post(
    "/{endpoint_id}/deliveries/{delivery_id}/resend",
    status_code=202,
    response_model=QueuedDelivery,
)
async def resend(
    endpoint_id: str, delivery_id: str, app_id: WebhooksApp, services: ServicesDep
) -> Json:
    """One more attempt of a delivery, now."""
    queued = await endpoints.resend(
        services.pool, app_id, _id(endpoint_id), _id(delivery_id, "delivery")
    )
    if queued is None:
        raise ApiError(404, "not_found", f"no delivery {delivery_id} for endpoint {endpoint_id}")
    if not queued:
        raise ApiError(409, "delivery_in_progress", "the delivery is being attempted right now")
    return Json({"delivery_id": delivery_id, "status": "queued"}, 202)


@router.post("/{endpoint_id}/recover", status_code=202, response_model=Requeued)
async def recover(
    endpoint_id: str, body: RecoverIn, app_id: WebhooksApp, services: ServicesDep
) -> Json:
    """Re-queue (one attempt each) every delivery that failed since `since`."""
    parsed = _id(endpoint_id)
    _found(await endpoints.get(services.pool, app_id, parsed), endpoint_id)
    count = await endpoints.recover(services.pool, app_id, parsed, body.since)
    return Json({"requeued": count}, 202)


@router.post("/{endpoint_id}/test", status_code=202, response_model=QueuedDelivery)
async def send_test(endpoint_id: str, app_id: WebhooksApp, services: ServicesDep) -> Json:
    """Queue a signed `webhook.test` event for the endpoint (one attempt)."""
    delivery_id = await endpoints.send_test(
        services.pool, app_id, _id(endpoint_id), datetime.now(UTC)
    )
    if delivery_id is None:
        raise ApiError(404, "not_found", f"no webhook endpoint {endpoint_id}")
    return Json({"delivery_id": str(delivery_id), "status": "queued"}, 202)
