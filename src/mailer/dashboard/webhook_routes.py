"""The Webhooks page and its two actions, replay and recover: thin routes over
`webhook_pages` and the webhooks package's functions (`mailer.webhooks.endpoints`).

Each action is an admin's, behind a confirmation page, CSRF-checked, and recorded with
`record_action`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from mailer.dashboard import pages, web, webhook_pages
from mailer.dashboard.actions import record_action
from mailer.dashboard.rows import EndpointRow
from mailer.dashboard.sessions import Operator
from mailer.webhooks import endpoints as webhook_endpoints

router = APIRouter(prefix=web.BASE, include_in_schema=False)

Text = Annotated[str | None, Query(max_length=320)]

NOTICES = {
    "replayed": "The delivery is queued for one more attempt, now.",
    "busy": "That delivery is being attempted right now: nothing was changed.",
    "recovered": "The endpoint is enabled again; the deliveries that failed since then are "
    "queued for one more attempt each.",
}


def _page_of(text: str | None, errors: list[str]) -> int | None:
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        errors.append("before: not a cursor of this log")
        return None


def _count_of(text: str | None) -> int | None:
    return int(text) if text and text.isdigit() else None


def _chosen_endpoints(
    found: list[EndpointRow], app: str | None, endpoint: str | None
) -> list[EndpointRow] | None:
    """The endpoints the app and endpoint filters leave (None: no filter)."""
    endpoint_id, app_id = web.parse_uuid(endpoint), web.parse_uuid(app)
    if endpoint_id is not None:
        return [e for e in found if e.id == endpoint_id]
    if app_id is not None:
        return [e for e in found if e.app_id == app_id]
    return None


@router.get("/webhooks")
async def webhooks(
    request: Request,
    app: Text = None,
    endpoint: Text = None,
    outcome: Text = None,
    before: Text = None,
    notice: Text = None,
) -> Response:
    """Every app's endpoints, and the delivery log filtered by app, endpoint and outcome."""
    operator = await web.operator_of(request)
    pool = web.pool_of(request)
    errors: list[str] = []
    if outcome and outcome not in webhook_pages.OUTCOMES:
        errors.append(f"outcome: {outcome!r} is neither of {', '.join(webhook_pages.OUTCOMES)}")
    cursor = _page_of(before, errors)
    every = await webhook_pages.endpoints(pool)
    chosen = _chosen_endpoints(every, app, endpoint)
    log = webhook_pages.AttemptPage([], None)
    if not errors:
        search = webhook_pages.AttemptFilter(
            endpoints=None if chosen is None else [e.id for e in chosen],
            outcome=outcome or None,
            before=cursor,
        )
        log = await webhook_pages.attempt_log(pool, search)
    query = {k: v for k, v in request.query_params.items() if k not in ("before", "notice") and v}
    next_page = None if log.next is None else "?" + urlencode(query | {"before": log.next})
    app_id = web.parse_uuid(app)
    return web.render(
        request,
        "webhooks.html",
        operator,
        status=400 if errors else 200,
        page="webhooks",
        endpoints=[e for e in every if app_id is None or e.app_id == app_id],
        all_endpoints=every,
        log=log,
        scan_limit=webhook_pages.SCAN_LIMIT,
        errors=errors,
        apps=await pages.apps(pool),
        outcomes=webhook_pages.OUTCOMES,
        form={k: request.query_params.get(k, "") for k in ("app", "endpoint", "outcome")},
        next_page=next_page,
        notice=NOTICES.get(notice or ""),
        requeued=_count_of(request.query_params.get("requeued")),
    )


def _admin_only(operator: Operator) -> None:
    if not operator.may_act:
        raise web.NotAllowed(operator, "Viewers can look but not act: ask an admin.")


def _not_found(request: Request, operator: Operator, what: str) -> Response:
    return web.render(request, "error.html", operator, status=404, message=f"No such {what}.")


@router.get("/webhooks/replay")
async def confirm_replay(request: Request, delivery: Text = None) -> Response:
    """Ask an admin to confirm one more attempt of a past delivery."""
    operator = await web.operator_of(request)
    _admin_only(operator)
    delivery_id = web.parse_uuid(delivery)
    found = (
        None
        if delivery_id is None
        else await webhook_pages.delivery(web.pool_of(request), delivery_id)
    )
    if found is None:
        return _not_found(request, operator, "webhook delivery")
    waits = (
        ""
        if found.enabled
        else " The endpoint is disabled: the attempt waits until it is recovered."
    )
    return web.render(
        request,
        "confirm.html",
        operator,
        page="webhooks",
        question=f"Deliver {found.event_type} ({found.event_id}) to {found.url} again?",
        consequence=f"{found.app}'s endpoint gets the same signed body, with the same webhook-id, "
        f"once more now ({found.attempts} attempt(s) so far, {found.state}).{waits}",
        action=f"{web.BASE}/webhooks/replay",
        fields={"delivery": str(found.id)},
        back=f"{web.BASE}/webhooks",
        button="Replay",
    )


@router.post("/webhooks/replay")
async def replay(request: Request) -> Response:
    """One more attempt of a delivery (admins, CSRF-checked), through the webhooks package's
    `resend`."""
    operator, form = await web.admin_form(request)
    delivery_id = web.parse_uuid(form.get("delivery"))
    pool = web.pool_of(request)
    found = None if delivery_id is None else await webhook_pages.delivery(pool, delivery_id)
    if found is None:
        return _not_found(request, operator, "webhook delivery")
    queued = await webhook_endpoints.resend(pool, found.app_id, found.endpoint_id, found.id)
    if queued is None:  # deleted with its endpoint between the two reads
        return _not_found(request, operator, "webhook delivery")
    if queued:
        await record_action(
            pool,
            "webhook.replayed",
            operator=operator.name,
            ip=web.client_ip(request),
            target=str(found.id),
            app_id=found.app_id,
            endpoint_id=str(found.endpoint_id),
            event_id=found.event_id,
        )
    notice = "replayed" if queued else "busy"
    return web.redirect(f"{web.BASE}/webhooks?{urlencode({'notice': notice})}")


def _default_since(found: EndpointRow, now: datetime) -> datetime:
    """Where recovering starts unless the admin says: when the endpoint began failing or
    was disabled, else a day ago."""
    marks = [m for m in (found.first_failure_at, found.disabled_at) if m is not None]
    return min(marks) if marks else now - timedelta(days=1)


def _since_of(text: str) -> datetime | None:
    """A date-time from the form (`datetime-local`: no zone, taken as UTC)."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@router.get("/webhooks/recover")
async def confirm_recover(request: Request, endpoint: Text = None) -> Response:
    """Ask an admin to confirm re-enabling an endpoint and redelivering what failed."""
    operator = await web.operator_of(request)
    _admin_only(operator)
    endpoint_id = web.parse_uuid(endpoint)
    pool = web.pool_of(request)
    found = None if endpoint_id is None else await webhook_pages.endpoint(pool, endpoint_id)
    if found is None:
        return _not_found(request, operator, "webhook endpoint")
    since = _default_since(found, datetime.now(UTC)).astimezone(UTC)
    state = "enabled" if found.enabled else f"disabled ({found.disabled_reason or 'no reason'})"
    return web.render(
        request,
        "confirm.html",
        operator,
        page="webhooks",
        question=f"Recover {found.app}'s endpoint {found.url}?",
        consequence=f"It is {state}. It will be enabled again, and every delivery to it that "
        "failed since the time below gets one more attempt, now.",
        action=f"{web.BASE}/webhooks/recover",
        fields={"endpoint": str(found.id)},
        inputs=[
            {
                "name": "since",
                "label": "Failed since (UTC)",
                "type": "datetime-local",
                "value": since.strftime("%Y-%m-%dT%H:%M"),
            }
        ],
        back=f"{web.BASE}/webhooks",
        button="Enable and redeliver",
    )


@router.post("/webhooks/recover")
async def recover(request: Request) -> Response:
    """Re-enable an endpoint and re-queue what failed since a time (admins, CSRF-checked),
    through the webhooks package's `reenable_and_recover`."""
    operator, form = await web.admin_form(request)
    endpoint_id = web.parse_uuid(form.get("endpoint"))
    since = _since_of(form.get("since", ""))
    if endpoint_id is None or since is None:
        return web.render(
            request,
            "error.html",
            operator,
            status=400,
            message="The form needs the endpoint and a time (since) written YYYY-MM-DDTHH:MM.",
        )
    pool = web.pool_of(request)
    found = await webhook_pages.endpoint(pool, endpoint_id)
    done = None
    if found is not None:
        done = await webhook_endpoints.reenable_and_recover(pool, found.app_id, found.id, since)
    if found is None or done is None:
        return _not_found(request, operator, "webhook endpoint")
    _, requeued = done
    await record_action(
        pool,
        "webhook.endpoint_recovered",
        operator=operator.name,
        ip=web.client_ip(request),
        target=str(found.id),
        app_id=found.app_id,
        since=since.isoformat(),
        was_enabled=found.enabled,
        requeued=requeued,
    )
    query = urlencode({"notice": "recovered", "requeued": requeued, "endpoint": str(found.id)})
    return web.redirect(f"{web.BASE}/webhooks?{query}")
