"""`/audit`: the calling app's entries in the audit log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import AwareDatetime, BeforeValidator

from mailer import audit
from mailer.api.deps import ReadApp, ServicesDep
from mailer.api.models import AuditPage, iso_only
from mailer.api.responses import Json

router = APIRouter(tags=["audit"])


@router.get("/audit", response_model=AuditPage)
async def list_audit(
    app_id: ReadApp,
    services: ServicesDep,
    since: Annotated[
        AwareDatetime | None, BeforeValidator(iso_only), Query(description="ISO 8601")
    ] = None,
    before: Annotated[int | None, Query(ge=1, lt=2**63)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Json:
    """Changes made to the app (keys, sender domains, webhook endpoints, suppressions added
    or removed by hand, erasures, retention runs), newest first: who, what, to what, when
    and from where. Pass `next_before` as `before` for the next page."""
    rows = await audit.entries(
        services.pool, app_id=app_id, since=since, before=before, limit=limit
    )
    next_before = rows[-1].id if len(rows) == limit else None
    return Json({"entries": [row.view() for row in rows], "next_before": next_before})
