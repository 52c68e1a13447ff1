"""The dashboard's pages and actions: thin routes over `pages` and the parts' functions."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from mailer.dashboard import pages, trail, web
from mailer.dashboard.actions import OPERATOR, log_action
from mailer.dashboard.actions import actor as operator_actor
from mailer.dashboard.callbacks import CallbackCheck
from mailer.dashboard.chart import bar_chart
from mailer.dashboard.rows import AppRow, JobHeader
from mailer.dashboard.sessions import Operator
from mailer.delivery import job_actions, limits
from mailer.delivery.email import MAX_TAG_LENGTH, TAG_PATTERN
from mailer.delivery.job_actions import NotFound, TooLate
from mailer.tracking import suppressions
from mailer.tracking.precedence import RecipientStatus

router = APIRouter(prefix=web.BASE, include_in_schema=False)

Text = Annotated[str | None, Query(max_length=320)]

NOTICES = {
    "unsuppressed": "Removed from the suppression list: sends to it are made again.",
    "not_suppressed": "That address was not on the list (someone removed it already).",
    "canceled": "Canceled: this job will not be sent.",
    "retried": "Retried: the failed recipients are queued again.",
    "paused": "Paused: the app's jobs stay queued until it is resumed.",
    "resumed": "Resumed: the app's jobs are sent again.",
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
    tag: str | None,
    since: str | None,
    until: str | None,
    after: str | None,
) -> tuple[pages.MessageFilter, list[str]]:
    errors: list[str] = []
    if status and status not in set(RecipientStatus):
        errors.append(f"status: {status!r} is not a recipient status")
        status = None
    tag = (tag or "").strip() or None
    if tag is not None and (len(tag) > MAX_TAG_LENGTH or not re.fullmatch(TAG_PATTERN, tag)):
        errors.append(f"tag: 1-{MAX_TAG_LENGTH} of the characters A-Z a-z 0-9 _ . : -")
        tag = None
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
        tag=tag,
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
    tag: Text = None,
    since: Text = None,
    until: Text = None,
    after: Text = None,
) -> Response:
    """Search recipient messages by address, app, status, tag and day."""
    operator = await web.operator_of(request)
    pool = web.pool_of(request)
    known: list[AppRow] = await pages.apps(pool)
    search, errors = _message_filter(recipient, app, status, tag, since, until, after)
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
async def message(request: Request, job_id: str, notice: Text = None) -> Response:
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
        notice=NOTICES.get(notice or ""),
    )


# What the message page's job actions say and do: (question, consequence, button, done).
JOB_ACTIONS = {
    "cancel": (
        "Cancel this job?",
        "It will never be sent: its recipients get a canceled event and the app its "
        "email.canceled webhooks. If a worker takes it first, nothing is canceled.",
        "Cancel the job",
        "canceled",
    ),
    "retry": (
        "Retry this job's failed recipients?",
        "They are queued again for a new round of attempts; what the last round ended with "
        "stays in the job's history.",
        "Retry the job",
        "retried",
    ),
}


async def _job_for_action(
    request: Request, job_id: str, action: str
) -> tuple[JobHeader, dict[str, Any]] | None:
    if action not in JOB_ACTIONS:
        return None
    parsed = web.parse_uuid(job_id)
    return None if parsed is None else await pages.message_detail(web.pool_of(request), parsed)


def _no_job(request: Request, operator: Operator, job_id: str) -> Response:
    return web.render(request, "error.html", operator, status=404, message=f"No job {job_id}.")


@router.get("/messages/{job_id}/{action}")
async def confirm_job_action(request: Request, job_id: str, action: str) -> Response:
    """Ask an admin to confirm canceling or retrying a job."""
    operator = await web.operator_of(request)
    if not operator.may_act:
        raise web.NotAllowed(operator, "Viewers can look but not act: ask an admin.")
    found = await _job_for_action(request, job_id, action)
    if found is None:
        return _no_job(request, operator, job_id)
    header = found[0]
    question, consequence, button, _ = JOB_ACTIONS[action]
    page = f"{web.BASE}/messages/{header.id}"
    return web.render(
        request,
        "confirm.html",
        operator,
        page="messages",
        question=f"{question} ({header.subject or 'no subject'}, {header.app})",
        consequence=consequence,
        reason_label=None,
        action=f"{page}/{action}",
        fields={"next": page},
        button=button,
    )


@router.post("/messages/{job_id}/{action}")
async def job_action(request: Request, job_id: str, action: str) -> Response:
    """Cancel or retry a job (admins, CSRF-checked) through the app API's own functions;
    a 409 page when it is too late (a worker took it, it was sent, …)."""
    operator, _ = await web.admin_form(request)
    found = await _job_for_action(request, job_id, action)
    if found is None:
        return _no_job(request, operator, job_id)
    header = found[0]
    ip = web.client_ip(request)
    act = job_actions.cancel if action == "cancel" else job_actions.retry
    try:
        await act(
            web.pool_of(request), header.app_id, header.id, actor=operator_actor(operator.name, ip)
        )
    except TooLate as refused:
        return web.render(
            request,
            "error.html",
            operator,
            status=409,
            message=f"Too late: {refused}. Nothing was changed.",
            back=f"{web.BASE}/messages/{header.id}",
        )
    except NotFound:
        return _no_job(request, operator, job_id)
    done = JOB_ACTIONS[action][3]
    log_action(f"job.{done}", operator=operator.name, ip=ip, target=str(header.id))
    return web.redirect(f"{web.BASE}/messages/{header.id}?{urlencode({'notice': done})}")


@router.get("/queue")
async def queue(request: Request, notice: Text = None) -> Response:
    """Jobs by state and app, why they wait, paused apps; pause, resume, bulk actions."""
    operator = await web.operator_of(request)
    empty = {"action": "cancel", "app": "", "tag": "", "created_from": "", "created_to": ""}
    return await _queue_page(request, operator, notice=NOTICES.get(notice or ""), bulk=empty)


async def _queue_page(
    request: Request,
    operator: Operator,
    *,
    bulk: dict[str, str],
    notice: str | None = None,
    errors: list[str] | None = None,
) -> Response:
    return web.render(
        request,
        "queue.html",
        operator,
        status=400 if errors else 200,
        page="queue",
        data=await pages.queue(web.pool_of(request)),
        states=pages.QUEUE_STATES_SHOWN,
        reasons=pages.WAIT_REASONS,
        notice=notice,
        bulk=bulk,
        bulk_max=pages.BULK_MAX,
        errors=errors or [],
    )


async def _known_app(request: Request, text: str | None) -> AppRow | None:
    app_id = web.parse_uuid(text)
    return next((a for a in await pages.apps(web.pool_of(request)) if a.id == app_id), None)


@router.post("/queue/pause")
async def pause(request: Request) -> Response:
    """Pause an app (admins, CSRF-checked): its jobs stay queued, unclaimed."""
    return await _pause_or_resume(request, "pause")


@router.post("/queue/resume")
async def resume(request: Request) -> Response:
    """Resume a paused app (admins, CSRF-checked): its jobs are claimed again."""
    return await _pause_or_resume(request, "resume")


async def _pause_or_resume(request: Request, change: str) -> Response:
    """As `mailer apps pause|resume` does: `delivery.limits`, which audits the change in
    its transaction."""
    operator, form = await web.admin_form(request)
    app = await _known_app(request, form.get("app"))
    if app is None:
        return web.render(request, "error.html", operator, status=404, message="No such app.")
    ip = web.client_ip(request)
    who = operator_actor(operator.name, ip)
    async with web.pool_of(request).acquire() as conn:
        if change == "pause":
            await limits.pause(conn, app.id, who)
        else:
            await limits.resume(conn, app.id, who)
    done = "paused" if change == "pause" else "resumed"
    log_action(f"app.{done}", operator=operator.name, ip=ip, target=str(app.id), app=app.name)
    return web.redirect(f"{web.BASE}/queue?{urlencode({'notice': done})}")


def _minute(text: str | None, field: str, errors: list[str]) -> datetime | None:
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        errors.append(f"{field}: a time is written YYYY-MM-DDTHH:MM (UTC)")
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


async def _bulk_filter(
    request: Request, fields: dict[str, str]
) -> tuple[pages.BulkFilter | None, AppRow | None, list[str]]:
    errors: list[str] = []
    action = fields.get("action", "")
    if action not in pages.BULK_ACTIONS:
        errors.append(f"action: one of {', '.join(pages.BULK_ACTIONS)}")
    app = await _known_app(request, fields.get("app"))
    if app is None:
        errors.append("app: choose the app whose jobs to act on")
    tag = (fields.get("tag") or "").strip() or None
    if tag is not None and len(tag) > 64:
        errors.append("tag: at most 64 characters")
    created_from = _minute(fields.get("created_from"), "created from", errors)
    created_to = _minute(fields.get("created_to"), "created before", errors)
    if errors or app is None:
        return None, None, errors
    bulk = pages.BulkFilter(action, app.id, tag, created_from, created_to)
    return bulk, app, errors


@router.get("/queue/bulk")
async def confirm_bulk(
    request: Request,
    action: Text = None,
    app: Text = None,
    tag: Text = None,
    created_from: Text = None,
    created_to: Text = None,
) -> Response:
    """Say how many jobs a bulk cancel or retry will act on, and ask to confirm."""
    operator = await web.operator_of(request)
    if not operator.may_act:
        raise web.NotAllowed(operator, "Viewers can look but not act: ask an admin.")
    fields = {
        "action": action or "",
        "app": app or "",
        "tag": tag or "",
        "created_from": created_from or "",
        "created_to": created_to or "",
    }
    bulk, found, errors = await _bulk_filter(request, fields)
    if bulk is None or found is None:
        return await _queue_page(request, operator, bulk=fields, errors=errors)
    selection = await pages.select_bulk(web.pool_of(request), bulk)
    return web.render(
        request,
        "bulk.html",
        operator,
        page="queue",
        bulk=bulk,
        app=found,
        selection=selection,
        limit=pages.BULK_MAX,
        ids=",".join(str(j) for j in selection.job_ids),
    )


@router.post("/queue/bulk")
async def bulk(request: Request) -> Response:
    """Cancel or retry exactly the jobs the confirmation listed (admins, CSRF-checked),
    by the per-job statements of the app API, in batches; says how many it acted on."""
    operator, form = await web.admin_form(request)
    bulk, found, errors = await _bulk_filter(request, form)
    job_ids = [web.parse_uuid(j) for j in form.get("jobs", "").split(",") if j]
    if bulk is None or found is None or None in job_ids or len(job_ids) > pages.BULK_MAX:
        message = "; ".join(errors) or f"jobs: at most {pages.BULK_MAX} job ids"
        return web.render(request, "error.html", operator, status=400, message=message)
    chosen = [j for j in job_ids if j is not None]
    ip = web.client_ip(request)
    act = job_actions.cancel_many if bulk.action == "cancel" else job_actions.retry_many
    acted = await act(
        web.pool_of(request), found.id, chosen, actor=operator_actor(operator.name, ip)
    )
    log_action(
        f"jobs.{'canceled' if bulk.action == 'cancel' else 'retried'}",
        operator=operator.name,
        ip=ip,
        target=f"{len(acted)} jobs",
        app=found.name,
    )
    return web.render(
        request,
        "bulk_done.html",
        operator,
        page="queue",
        bulk=bulk,
        app=found,
        asked=len(chosen),
        acted=len(acted),
    )


@router.get("/audit")
async def audit_log(
    request: Request,
    app: Text = None,
    actor: Text = None,
    action: Text = None,
    before: Text = None,
) -> Response:
    """The audit log, newest first: who did what, when, from where."""
    operator = await web.operator_of(request)
    pool = web.pool_of(request)
    errors: list[str] = []
    cursor: int | None = None
    if before:
        try:
            cursor = int(before)
        except ValueError:
            errors.append("before: not a cursor of this list")
    who = (actor or "").strip() or None
    if who is not None and ":" not in who:
        who = f"{OPERATOR}:{who}"  # a bare name is an operator's
    search = pages.AuditFilter(
        app=web.parse_uuid(app), actor=who, action=(action or "").strip() or None, before=cursor
    )
    found = pages.AuditPage([], None) if errors else await pages.audit_page(pool, search)
    query = {k: v for k, v in request.query_params.items() if k != "before" and v}
    next_page = None if found.next is None else "?" + urlencode(query | {"before": found.next})
    return web.render(
        request,
        "audit.html",
        operator,
        status=400 if errors else 200,
        page="audit",
        rows=found.rows,
        partial=found.partial,
        scan_limit=pages.AUDIT_SCAN,
        errors=errors,
        apps=await pages.apps(pool),
        form={"app": app or "", "actor": actor or "", "action": action or ""},
        next_page=next_page,
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
        actor=operator_actor(operator.name, web.client_ip(request)),
    )
    if removed:
        log_action(
            "suppression.removed",
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
