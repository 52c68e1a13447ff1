"""Logging in and out of the dashboard."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from mailer.dashboard import web
from mailer.dashboard.actions import log_action, record_action
from mailer.dashboard.operators import LoginThrottled, authenticate
from mailer.dashboard.sessions import close_session, open_session, session_for, tokens_match

router = APIRouter(prefix=web.BASE, include_in_schema=False)

MAX_NAME_SHOWN = 100
"""A refused login's name is logged and audited up to this many characters."""


def _login_page(
    request: Request, next_path: str, *, error: str | None = None, status: int = 200
) -> Response:
    csrf = web.login_csrf(request)
    response = web.render(
        request, "login.html", None, status=status, csrf=csrf, next=next_path, error=error
    )
    web.set_login_cookie(request, response, csrf)
    return response


@router.get("/login")
async def login_form(
    request: Request, next: Annotated[str | None, Query(max_length=2000)] = None
) -> Response:
    """The login page (an operator already logged in goes straight on)."""
    config = web.config_of(request)
    token = request.cookies.get(web.SESSION_COOKIE)
    if await session_for(web.pool_of(request), token, config.sessions) is not None:
        return web.redirect(web.safe_next(next))
    return _login_page(request, web.safe_next(next))


@router.post("/login")
async def login(request: Request) -> Response:
    """Check the name and password; on success start a session and go on."""
    form = await web.form_of(request)
    next_path = web.safe_next(form.get("next"))
    if not tokens_match(request.cookies.get(web.LOGIN_COOKIE) or "", form.get("csrf")):
        return _login_page(
            request, next_path, error="The form expired: please log in again.", status=403
        )
    name, password = form.get("name", "").strip(), form.get("password", "")
    ip = web.client_ip(request)
    config = web.config_of(request)
    try:
        operator = await authenticate(web.pool_of(request), name, password, ip, config.logins)
    except LoginThrottled:
        log_action("operator.login_throttled", operator=name[:MAX_NAME_SHOWN], ip=ip)
        return _login_page(
            request,
            next_path,
            error="Too many failed logins: wait a few minutes and try again.",
            status=429,
        )
    if operator is None:
        # The name as typed, cut short: a stranger's form must not fill the audit log.
        typed = name[:MAX_NAME_SHOWN]
        await record_action(web.pool_of(request), "operator.login_failed", operator=typed, ip=ip)
        return _login_page(request, next_path, error="Wrong name or password.", status=401)
    token = await open_session(web.pool_of(request), operator.id, ip, config.sessions)
    await record_action(
        web.pool_of(request), "operator.login", operator=operator.name, ip=ip, role=operator.role
    )
    response = web.redirect(next_path)
    web.set_session_cookie(request, response, token, config.sessions.absolute_seconds)
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    """End the session (its CSRF token must come back) and show the login page."""
    operator = await web.operator_of(request)
    form = await web.form_of(request)
    if not tokens_match(operator.csrf_token, form.get("csrf")):
        raise web.NotAllowed(operator, "This form has expired or did not come from this page.")
    await close_session(web.pool_of(request), request.cookies.get(web.SESSION_COOKIE))
    await record_action(
        web.pool_of(request), "operator.logout", operator=operator.name, ip=web.client_ip(request)
    )
    response = web.redirect(f"{web.BASE}/login")
    web.clear_session_cookie(response)
    return response
