"""`POST /events`: where Mailjet posts its tracking events (the Event API callback).

Guarded by the basic-auth credentials embedded in the registered callback URL. Answers 200
once the body and its events are stored (Mailjet retries anything else), 400 for a body
that is not JSON, 401 for wrong credentials, 503 when nothing could be stored.
"""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Request

from mailer.api.deps import ServicesDep
from mailer.api.errors import ApiError
from mailer.api.models import EventsStored
from mailer.api.responses import Json
from mailer.logs import describe
from mailer.ops.activity import ACTIVITY
from mailer.ops.outage import is_unavailable
from mailer.tracking.credentials import basic_auth_matches
from mailer.tracking.intake import store_callback
from mailer.tracking.parse import InvalidCallbackBody

router = APIRouter(tags=["tracking"])
log = logging.getLogger(__name__)


@router.post("/events", status_code=200, response_model=EventsStored)
async def mailjet_events(request: Request, services: ServicesDep) -> Json:
    """Mailjet's event callback: one event object (Version 1) or an array (Version 2)."""
    settings = services.settings
    user = settings.events_user
    password = settings.events_password
    if (
        user is None
        or password is None
        or not basic_auth_matches(
            request.headers.get("authorization"), user, password.get_secret_value()
        )
    ):
        raise ApiError(
            401,
            "unauthorized",
            "wrong or missing event-callback credentials",
            headers={"WWW-Authenticate": 'Basic realm="mailer-events"'},
        )
    body = await request.body()
    try:
        # Shielded: once started, the write completes even if the caller goes away.
        result = await asyncio.shield(
            store_callback(services.pool, body, scanner_seconds=settings.scanner_click_seconds)
        )
    except InvalidCallbackBody as exc:
        raise ApiError(400, "invalid_body", str(exc)) from None
    except Exception as exc:
        if is_unavailable(exc):
            request.app.state.outage.failed(exc)  # logged once per outage
        else:
            log.error(
                "could not store Mailjet events; Mailjet will retry",
                extra={"action": "events_unavailable", "bytes": len(body), "error": describe(exc)},
            )
            log.debug("could not store Mailjet events", exc_info=exc)
        raise ApiError(
            503,
            "unavailable",
            "the events could not be stored; try again later",
            headers={"Retry-After": "30"},
        ) from None
    ACTIVITY.add("event_posts")
    ACTIVITY.add("events_stored", result.stored)
    return Json({"received": result.received, "stored": result.stored, "linked": result.linked})
