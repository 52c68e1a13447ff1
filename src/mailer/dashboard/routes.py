"""The dashboard's pages and actions: thin routes over `pages` and the parts' functions."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from mailer.audit import Actor
from mailer.dashboard import pages, trail, web
from mailer.dashboard.actions import record_action
from mailer.dashboard.callbacks import CallbackCheck
from mailer.dashboard.chart import bar_chart
from mailer.dashboard.rows import AppRow
from mailer.tracking import suppressions
from mailer.tracking.precedence import RecipientStatus

router = APIRouter(prefix=web.BASE, include_in_schema=False)

Text = Annotated[str | None, Query(max_length=320)]

NOTICES = {
    "unsuppressed": "Removed from the suppression list: sends to it are made again.",
    "not_suppressed": "That address was not on the list (someone removed it already).",
}


@router.get("")
async def overview(request: Request, period: Text = None, app: Text = None) -> Response:
    """Queue depth, workers, and the period's counts and rates per app from the stats
    rollups, with charts."""
    operator = await web.operator_of(request)
    chosen = pages.PERIODS.get(period or "24h", pages.PERIODS["24h"])
    app_id = web.parse_uuid(app)
    pool = web.pool_of(request)
    data = await pages.overview(pool, chosen, app=app_id)
    known = await pages.apps(pool)
    whose = next((a.name for a in known if a.id == app_id), "all apps")
    per = "hour" if chosen.granularity == "hour" else "day"
    return web.render(
        request,
        "overview.html",
        operator,
        page="overview",
        data=data,
        charts=[
            (
                bar_chart(
                    data.labels,
                    series,
                    title=f"{title} per {per}, last {chosen.name}, {whose}",
                    classes=[f"s-{name}" for name in series],
                ),
                list(series),
            )
            for title, series in (
                ("Recipients sent", data.series),
                ("Recipients engaging or complaining", data.engagement),
            )
        ],
        whose=whose,
        apps=known,
        app_id=app_id,
        periods=list(pages.PERIODS),
        bounce=pages.BOUNCE_RATE,
        complaint=pages.COMPLAINT_RATE,
    )


def _day(text: str | None, field: str, errors: list[str]) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        errors.append(f"{field}: a date is written YYYY-MM-DD")
        return None


def _start_of(day: date | None) -> datetime | None:
    return None if day is None else datetime(day.year, day.month, day.day, tzinfo=UTC)


def _message_filter(
    recipient: str | None,
    app: str | None,
    status: str | None,
    since: str | None,
    until: str | None,
    after: str | None,
) -> tuple[pages.MessageFilter, list[str]]:
    errors: list[str] = []
    if status and status not in set(RecipientStatus):
        errors.append(f"status: {status!r} is not a recipient status")
        status = None
    cursor = pages.MessageCursor()
    if after:
        try:
            cursor = pages.MessageCursor.decode(after)
        except ValueError:
            errors.append("after: not a cursor of this list")
    last_day = _day(until, "until", errors)
    search = pages.MessageFilter(
        recipient=recipient or None,
        app=web.parse_uuid(app),
        status=status or None,
        since=_start_of(_day(since, "since", errors)),
        until=_start_of(last_day + timedelta(days=1) if last_day else None),
        after=cursor,
    )
    return search, errors


@router.get("/messages")
async def messages(
    request: Request,
    recipient: Text = None,
    app: Text = None,
    status: Text = None,
    since: Text = None,
    until: Text = None,
    after: Text = None,
) -> Response:
    """Search recipient messages by address, app, status and day."""
    operator = await web.operator_of(request)
    pool = web.pool_of(request)
    known: list[AppRow] = await pages.apps(pool)
    search, errors = _message_filter(recipient, app, status, since, until, after)
    found = (
        pages.MessagePage([], None)
        if errors
        else await pages.search_messages(pool, search, [a.id for a in known])
    )
    query = {k: v for k, v in request.query_params.items() if k != "after" and v}
    next_page = (
        None if found.next is None else "?" + urlencode(query | {"after": found.next.encode()})
    )
    return web.render(
        request,
        "messages.html",
        operator,
        status=400 if errors else 200,
        page="messages",
        rows=found.rows,
        partial=found.partial,
        scan_limit=pages.SCAN_LIMIT,
        errors=errors,
        apps=known,
        statuses=[str(s) for s in RecipientStatus],
        form={k: request.query_params.get(k, "") for k in pages.MESSAGE_FIELDS},
        next_page=next_page,
    )


@router.get("/messages/{job_id}")
async def message(request: Request, job_id: str) -> Response:
    """One job: its recipients, each one's timeline, its keys, and what may be done."""
    operator = await web.operator_of(request)
    parsed = web.parse_uuid(job_id)
    found = None if parsed is None else await pages.message_detail(web.pool_of(request), parsed)
    if found is None:
        return web.render(request, "error.html", operator, status=404, message=f"No job {job_id}.")
    header, status = found
    pool = web.pool_of(request)
    return web.render(
        request,
        "message.html",
        operator,
        page="messages",
        job=header,
        job_status=status,
        actions=pages.message_actions(operator, header, status),
        raw_events=await trail.raw_events(pool, header.id),
        deliveries=await trail.deliveries(pool, header.id),
    )


@router.get("/mailjet")
async def mailjet(request: Request, recheck: Text = None) -> Response:
    """Whether the event callbacks registered at Mailjet are right, the workers alive and
    the last event of each type Mailjet posted."""
    operator = await web.operator_of(request)
    health = await pages.mailjet_health(web.pool_of(request))
    check: CallbackCheck = request.app.state.dashboard_callbacks
    callbacks = await check.findings(request.app.state.services.settings, fresh=bool(recheck))
    return web.render(
        request, "mailjet.html", operator, page="mailjet", health=health, callbacks=callbacks
    )


def _suppression_cursor(text: str | None) -> tuple[uuid.UUID, str] | None:
    app, _, email = (text or "").partition(":")
    app_id = web.parse_uuid(app)
    return None if app_id is None else (app_id, email)


@router.get("/suppressions")
async def suppression_list(
    request: Request, q: Text = None, app: Text = None, after: Text = None, notice: Text = None
) -> Response:
    """Suppressed addresses, per app, by the start of the address."""
    operator = await web.operator_of(request)
    pool = web.pool_of(request)
    known = await pages.apps(pool)
    app_id = web.parse_uuid(app)
    wanted = [app_id] if app_id is not None else [a.id for a in known]
    cursor = _suppression_cursor(after)
    if cursor is None:
        rows, more = await pages.search_suppressions(pool, wanted, q or "")
    else:
        rows, more = await pages.search_suppressions(pool, wanted, q or "", cursor)
    query = {k: v for k, v in request.query_params.items() if k in ("q", "app") and v}
    next_page = None if more is None else "?" + urlencode(query | {"after": f"{more[0]}:{more[1]}"})
    return web.render(
        request,
        "suppressions.html",
        operator,
        page="suppressions",
        rows=rows,
        apps=known,
        form={"q": q or "", "app": app or ""},
        next_page=next_page,
        notice=NOTICES.get(notice or ""),
    )


@router.get("/suppressions/remove")
async def confirm_unsuppress(
    request: Request, app: Text = None, email: Text = None, next: Text = None
) -> Response:
    """Ask an admin to confirm removing an address from an app's suppression list."""
    operator = await web.operator_of(request)
    if not operator.may_act:
        raise web.NotAllowed(operator, "Viewers can look but not act: ask an admin.")
    app_id = web.parse_uuid(app)
    names = {a.id: a.name for a in await pages.apps(web.pool_of(request))}
    if app_id not in names or not email:
        return web.render(
            request, "error.html", operator, status=404, message="No such app or address."
        )
    return web.render(
        request,
        "confirm.html",
        operator,
        page="suppressions",
        question=f"Remove {email} from {names[app_id]}'s suppression list?",
        consequence="Emails to this address will be sent again. The reason is kept in the "
        "address's history.",
        reason_label="Why",
        action=f"{web.BASE}/suppressions/remove",
        fields={"app": str(app_id), "email": email, "next": next or ""},
        button="Remove from the list",
    )


@router.post("/suppressions/remove")
async def unsuppress(request: Request) -> Response:
    """Remove an address from an app's suppression list (admins, CSRF-checked)."""
    operator, form = await web.admin_form(request)
    app_id, email = web.parse_uuid(form.get("app")), form.get("email", "")
    reason = form.get("reason", "").strip()
    if app_id is None or not email or not reason:
        return web.render(
            request,
            "error.html",
            operator,
            status=400,
            message="The form needs an address and the reason for removing it.",
        )
    removed = await suppressions.reactivate(
        web.pool_of(request),
        app_id,
        email,
        reason=reason,
        actor=Actor("operator", operator.name, web.client_ip(request)),
    )
    if removed:
        record_action(
            "suppression_removed",
            operator=operator.name,
            ip=web.client_ip(request),
            target=email,
            app_id=str(app_id),
            reason=reason,
        )
    notice = "unsuppressed" if removed else "not_suppressed"
    back = form.get("next") or ""
    if back.startswith(f"{web.BASE}/messages/"):
        return web.redirect(back)
    return web.redirect(f"{web.BASE}/suppressions?{urlencode({'notice': notice})}")
