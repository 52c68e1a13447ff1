"""`mailer audit`: the audit log, newest first."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click

from mailer.cli.common import main, print_json, with_db


def _since(value: str | None) -> datetime | None:
    """An ISO 8601 time, or a span back from now (`7d`, `12h`, `30m`)."""
    if value is None:
        return None
    from mailer.apps.keys import parse_lifetime

    try:
        return datetime.now(UTC) - parse_lifetime(value)
    except ValueError:
        pass
    try:
        found = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            "give an ISO 8601 time (2026-12-01T09:00Z) or a span back from now (7d, 12h)",
            param_hint="--since",
        ) from None
    return found if found.tzinfo is not None else found.replace(tzinfo=UTC)


@main.command("audit")
@click.option("--app", "app", help="Only this app's entries (id or name).")
@click.option("--since", help="From this time (ISO 8601) or span back (7d, 12h, 30m).")
@click.option("--limit", type=click.IntRange(1, 100_000), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def audit_command(app: str | None, since: str | None, limit: int, as_json: bool) -> None:
    """List the audit log, newest first: who changed what, when, from where."""
    from mailer import audit
    from mailer.apps import store

    start = _since(since)

    async def action(conn: Any) -> list[audit.AuditEntry]:
        app_id = None
        if app is not None:
            found = await store.find_app(conn, app)
            if found is None:
                raise click.ClickException(f"no app {app!r}")
            app_id = found.id
        return await audit.entries(conn, app_id=app_id, since=start, limit=limit)

    rows = with_db(action)
    if as_json:
        print_json([row.view() for row in rows])
        return
    for row in rows:
        target = f" {row.target}" if row.target else ""
        where = f" from {row.source}" if row.source else ""
        app_part = f" app={row.app_id}" if row.app_id else ""
        click.echo(
            f"{row.at:%Y-%m-%d %H:%M:%S}  {row.actor}  {row.action}{target}{app_part}{where}"
        )
