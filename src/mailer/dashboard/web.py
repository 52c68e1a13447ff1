"""The dashboard's HTTP plumbing: who is asking, forms and CSRF, rendering, answers.

The session cookie is HTTP-only and SameSite=Strict, and Secure whenever the request came
over HTTPS, directly or through a proxy that uvicorn trusts (`X-Forwarded-Proto` from an
address in `FORWARDED_ALLOW_IPS`; docs/dashboard.md). Every POST carries the session's
CSRF token (the login form, which has no session yet, a token of its own cookie).
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

import asyncpg
from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from mailer import __version__
from mailer.dashboard.operators import LoginPolicy
from mailer.dashboard.sessions import Operator, SessionPolicy, session_for, tokens_match
from mailer.dashboard.trail import masked

__all__ = [
    "BASE",
    "DashboardConfig",
    "LoginRequired",
    "NotAllowed",
    "admin_form",
    "client_ip",
    "config_of",
    "operator_of",
    "pool_of",
    "redirect",
    "render",
]

BASE = "/dashboard"
SESSION_COOKIE = "mailer_session"
LOGIN_COOKIE = "mailer_login_csrf"
_HERE = Path(__file__).parent
TEMPLATES = Jinja2Templates(directory=_HERE / "templates")
# Shown URLs (a clicked link may carry a password reset's token) lose their credentials.
TEMPLATES.env.filters["masked"] = masked
STATIC_DIR = _HERE / "static"

# Pages only load their own stylesheet; nothing may frame them or post them elsewhere.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class DashboardConfig:
    """How long sessions last and how many failed logins are allowed."""

    sessions: SessionPolicy = field(default_factory=SessionPolicy)
    logins: LoginPolicy = field(default_factory=LoginPolicy)


class LoginRequired(Exception):
    """No live session: the answer is a redirect to the login page."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class NotAllowed(Exception):
    """The operator may not do this (a viewer acting, a bad CSRF token): a 403 page."""

    def __init__(self, operator: Operator | None, message: str) -> None:
        super().__init__(message)
        self.operator = operator
        self.message = message


def pool_of(request: Request) -> asyncpg.Pool:
    """The process's database pool."""
    pool: asyncpg.Pool = request.app.state.services.pool
    return pool


def config_of(request: Request) -> DashboardConfig:
    """The dashboard's settings, as `install` put them on the app."""
    config: DashboardConfig = request.app.state.dashboard
    return config


def client_ip(request: Request) -> str:
    """The client's address (the proxy's forwarded one when uvicorn trusts the proxy)."""
    return request.client.host if request.client else "unknown"


def is_https(request: Request) -> bool:
    """Whether the request came over HTTPS (as uvicorn saw it, proxy headers applied)."""
    return request.url.scheme == "https"


async def operator_of(request: Request) -> Operator:
    """The operator of the request's session.

    Raises:
        LoginRequired: there is no live session.
    """
    token = request.cookies.get(SESSION_COOKIE)
    operator = await session_for(pool_of(request), token, config_of(request).sessions)
    if operator is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(target)
    return operator


async def form_of(request: Request) -> dict[str, str]:
    """An `application/x-www-form-urlencoded` body (the dashboard's forms) as a dict."""
    body = (await request.body()).decode("utf-8", errors="replace")
    return dict(parse_qsl(body, keep_blank_values=True))


async def admin_form(request: Request) -> tuple[Operator, dict[str, str]]:
    """The operator and form of a POST that acts: the session's CSRF token must come back
    and the operator must be an admin.

    Raises:
        LoginRequired: no live session.
        NotAllowed: a viewer, or the CSRF token is missing or wrong.
    """
    operator = await operator_of(request)
    form = await form_of(request)
    if not tokens_match(operator.csrf_token, form.get("csrf")):
        raise NotAllowed(operator, "This form has expired or did not come from this page.")
    if not operator.may_act:
        raise NotAllowed(operator, "Viewers can look but not act: ask an admin.")
    return operator, form


def _with_headers(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    return response


def render(
    request: Request,
    template: str,
    operator: Operator | None,
    *,
    status: int = 200,
    **context: Any,
) -> Response:
    """A page from `templates/`, with the operator (for the menu and the CSRF token)."""
    response = TEMPLATES.TemplateResponse(
        request,
        template,
        {"operator": operator, "base": BASE, "version": __version__, **context},
        status_code=status,
    )
    return _with_headers(response)


def redirect(path: str) -> Response:
    """A 303 to another dashboard page (after a POST, or to the login page)."""
    return _with_headers(RedirectResponse(path, status_code=303))


def login_redirect(next_path: str) -> Response:
    """To the login page, coming back to `next_path` afterwards."""
    return redirect(f"{BASE}/login?next={quote(next_path, safe='')}")


def safe_next(path: str | None) -> str:
    """Where to go after login: only a path of the dashboard, never another site."""
    if path and path.startswith(BASE) and not path.startswith("//"):
        return path
    return BASE


def set_session_cookie(request: Request, response: Response, token: str, max_age: float) -> None:
    """The session cookie: HTTP-only, SameSite=Strict, Secure over HTTPS."""
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(max_age),
        path=BASE,
        httponly=True,
        samesite="strict",
        secure=is_https(request),
    )


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path=BASE, httponly=True, samesite="strict")


def login_csrf(request: Request) -> str:
    """The login form's CSRF token: the login cookie's, or a new one."""
    return request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(32)


def set_login_cookie(request: Request, response: Response, token: str) -> None:
    response.set_cookie(
        LOGIN_COOKIE,
        token,
        max_age=3600,
        path=BASE,
        httponly=True,
        samesite="strict",
        secure=is_https(request),
    )


def parse_uuid(text: str | None) -> uuid.UUID | None:
    """A UUID from a form or query field; None when empty or not a UUID."""
    try:
        return uuid.UUID(text) if text else None
    except ValueError:
        return None


def not_allowed_page(request: Request, exc: NotAllowed) -> Response:
    return render(request, "error.html", exc.operator, status=403, message=exc.message)
