"""The erasure page (issue 18): an admin erases a recipient's data, as `mailer erase` does.

Three steps, each a POST so that the address never appears in a URL (and so in no access
log): the form; a confirmation that states what will be erased (counts from
:func:`mailer.lifecycle.erasure.preview`); the erasure itself, through the same domain
function as the CLI, audited as `erasure` with the counts and never the address. Admins
only (a viewer gets 403, even for the form), every POST CSRF-checked.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict

from fastapi import APIRouter, Request
from fastapi.responses import Response

from mailer.dashboard import pages, web
from mailer.dashboard.actions import actor, log_action
from mailer.dashboard.sessions import Operator
from mailer.lifecycle.erasure import Erased, erase, preview
from mailer.vault import SecretBox

router = APIRouter(prefix=web.BASE, include_in_schema=False)

MAX_ADDRESS = 320


def _box(request: Request) -> SecretBox | None:
    """The key erased addresses are hashed under; None without MAILER_SECRET_KEY."""
    box: SecretBox | None = request.app.state.services.box
    return box


def _no_key_page(request: Request, operator: Operator) -> Response:
    return web.render(
        request,
        "error.html",
        operator,
        status=503,
        message="Erasure needs MAILER_SECRET_KEY: an erased address's suppression is kept "
        "as a hash keyed with it.",
    )


def _admin(operator: Operator) -> None:
    if not operator.may_act:
        raise web.NotAllowed(operator, "Viewers can look but not act: ask an admin.")


def _counts(erased: Erased) -> list[tuple[str, int]]:
    return [(what.replace("_", " "), count) for what, count in asdict(erased).items()]


async def _form_page(
    request: Request, operator: Operator, *, status: int = 200, error: str | None = None
) -> Response:
    return web.render(
        request,
        "erase.html",
        operator,
        status=status,
        page="erase",
        step="form",
        error=error,
        apps=await pages.apps(web.pool_of(request)),
    )


async def _parsed(
    request: Request, operator: Operator, form: dict[str, str]
) -> tuple[str, uuid.UUID | None, str] | Response:
    """The address and app of a form, or the form again with what is wrong (400)."""
    address = form.get("address", "").strip()
    if "@" not in address or len(address) > MAX_ADDRESS:
        return await _form_page(
            request, operator, status=400, error="address: give an email address"
        )
    app_text = form.get("app", "")
    if not app_text:
        return address, None, "every app"
    app_id = web.parse_uuid(app_text)
    names = {a.id: a.name for a in await pages.apps(web.pool_of(request))}
    if app_id is None or app_id not in names:
        return await _form_page(request, operator, status=400, error="app: no such app")
    return address, app_id, names[app_id]


async def _erasure_asked(
    request: Request,
) -> tuple[Operator, dict[str, str], SecretBox, tuple[str, uuid.UUID | None, str]] | Response:
    """What both POST steps start with: an admin's CSRF-checked form, the key, the address
    and app asked for; or the page that says what is missing or wrong."""
    operator, form = await web.admin_form(request)
    box = _box(request)
    if box is None:
        return _no_key_page(request, operator)
    parsed = await _parsed(request, operator, form)
    if isinstance(parsed, Response):
        return parsed
    return operator, form, box, parsed


@router.get("/erase")
async def erase_form(request: Request) -> Response:
    """The form: which address, of which app (or of every app)."""
    operator = await web.operator_of(request)
    _admin(operator)
    if _box(request) is None:
        return _no_key_page(request, operator)
    return await _form_page(request, operator)


@router.post("/erase/confirm")
async def confirm_erase(request: Request) -> Response:
    """What erasing the address would remove, counted now, and the button that does it."""
    asked = await _erasure_asked(request)
    if isinstance(asked, Response):
        return asked
    operator, form, box, (address, app_id, scope) = asked
    async with web.pool_of(request).acquire() as conn:
        counts = await preview(conn, address, app_id=app_id, box=box)
    return web.render(
        request,
        "erase.html",
        operator,
        page="erase",
        step="confirm",
        address=address,
        app=form.get("app", ""),
        scope=scope,
        counts=_counts(counts),
    )


@router.post("/erase")
async def do_erase(request: Request) -> Response:
    """Erase the address (admins, CSRF-checked): the CLI's erasure, audited."""
    asked = await _erasure_asked(request)
    if isinstance(asked, Response):
        return asked
    operator, _, box, (address, app_id, scope) = asked
    ip = web.client_ip(request)
    async with web.pool_of(request).acquire() as conn:
        erased = await erase(conn, address, app_id=app_id, box=box, actor=actor(operator.name, ip))
    # Never the address: the log says that an erasure happened, as the audit entry does.
    log_action(
        "erasure",
        operator=operator.name,
        ip=ip,
        app_id=None if app_id is None else str(app_id),
        **asdict(erased),
    )
    return web.render(
        request,
        "erase.html",
        operator,
        page="erase",
        step="done",
        scope=scope,
        counts=_counts(erased),
    )
