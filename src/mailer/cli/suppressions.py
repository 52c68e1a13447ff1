"""An app's suppression list from the command line: `mailer suppressions …`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import click

from mailer.audit import Actor
from mailer.cli.common import T, main, print_json, run_async, settings_or_exit


@main.group()
def suppressions() -> None:
    """An app's suppressed addresses: add, reactivate, and each address's history."""


def _with_app(app: str, action: Callable[[Any, Any], Awaitable[T]]) -> T:
    """Run ``action(pool, app_id)`` against the database, for the app named ``app``."""
    from mailer import runtime
    from mailer.apps import store
    from mailer.db.pool import create_pool

    settings = settings_or_exit()

    async def go(dsn: str) -> T:
        await runtime.check_migrations(dsn)
        pool = await create_pool(dsn, min_size=1, max_size=2)
        try:
            async with pool.acquire() as conn:
                found = await store.find_app(conn, app)
            if found is None:
                raise click.ClickException(f"no app named {app!r} (see `mailer apps list`)")
            return await action(pool, found.id)
        finally:
            await pool.close()

    with runtime.database(settings) as dsn:
        return run_async(go(dsn))


@suppressions.command("add")
@click.argument("app")
@click.argument("email")
@click.option("--reason", default="manual", show_default=True)
@click.option("--expires", type=click.DateTime(["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d"]),
              help="When it stops applying (default: never).")  # fmt: skip
def suppressions_add(app: str, email: str, reason: str, expires: datetime | None) -> None:
    """Suppress EMAIL for APP: no more email is sent to it."""
    from mailer.tracking.suppressions import add_suppression

    if expires is not None and expires.tzinfo is None:
        expires = expires.astimezone()
    entry, created = _with_app(
        app,
        lambda pool, app_id: add_suppression(
            pool, app_id, email, reason, Actor.cli(), expires_at=expires
        ),
    )
    verb = "suppressed" if created else "already suppressed"
    click.echo(f"{entry['email']} {verb} for {app} ({entry['reason']})")


@suppressions.command("reactivate")
@click.argument("app")
@click.argument("email")
@click.option("--reason", required=True, help="Why it may be sent to again (kept in its history).")
def suppressions_reactivate(app: str, email: str, reason: str) -> None:
    """Take EMAIL off APP's suppression list, with the reason why."""
    from mailer.tracking.suppressions import reactivate

    if not reason.strip():
        raise click.BadParameter("must not be blank", param_hint="--reason")
    done = _with_app(
        app, lambda pool, app_id: reactivate(pool, app_id, email, reason=reason, actor=Actor.cli())
    )
    if not done:
        raise click.ClickException(f"{email} is not suppressed for {app}")
    click.echo(f"{email.strip().lower()} may be sent to again by {app}")


@suppressions.command("history")
@click.argument("app")
@click.argument("email")
@click.option("--json", "as_json", is_flag=True, help="Print the history as JSON.")
def suppressions_history(app: str, email: str, as_json: bool) -> None:
    """Whether EMAIL is suppressed for APP now, and every change of that, oldest first."""
    from mailer.tracking.suppressions import history

    found = _with_app(app, lambda pool, app_id: history(pool, app_id, email))
    if as_json:
        print_json(found)
        return
    state = "suppressed" if found["suppressed"] else "not suppressed"
    click.echo(f"{found['email']}: {state} for {app}")
    for change in found["history"]:
        extra = f", event {change['event_id']}" if change["event_id"] else ""
        if change["expires_at"] is not None:
            extra += f", until {change['expires_at']:%Y-%m-%d %H:%M %Z}"
        click.echo(
            f"  {change['at']:%Y-%m-%d %H:%M:%S}  {change['action']:<11} by {change['actor']:<9}"
            f" {change['reason']}{extra}"
        )
