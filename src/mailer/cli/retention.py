"""`mailer retention …`: run retention now, and set an app's own periods."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import click

from mailer.cli.common import main, print_json, settings_or_exit, with_db


@main.group("retention")
def retention_group() -> None:
    """How long data is kept (workers remove expired data every 10 minutes by themselves)."""


@retention_group.command("run")
@click.option("--json", "as_json", is_flag=True)
def run_now(as_json: bool) -> None:
    """Remove expired data now (what the workers do every MAILER_RETENTION_INTERVAL_SECONDS)."""
    from datetime import UTC, datetime

    from mailer.lifecycle.retention import Periods, run_once

    settings = settings_or_exit()

    async def action(conn: Any) -> Any:
        return await run_once(conn, Periods.from_settings(settings), now=datetime.now(UTC))

    removed = with_db(action)
    if removed is None:
        raise click.ClickException("a worker is running retention right now; try again later")
    counts = asdict(removed)
    if as_json:
        print_json(counts)
    else:
        click.echo("removed: " + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in counts.items()))


@retention_group.command("set")
@click.argument("app")
@click.option("--bodies", "bodies_days", type=int, help="Days to keep email bodies.")
@click.option("--jobs", "jobs_days", type=int, help="Days to keep jobs, recipients, events.")
def set_app(app: str, bodies_days: int | None, jobs_days: int | None) -> None:
    """Give APP its own periods (the others follow the settings)."""
    from mailer.apps import store
    from mailer.audit import Actor
    from mailer.lifecycle.retention import checked_overrides, set_app_retention

    try:
        overrides = checked_overrides(bodies_days, jobs_days)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    if not overrides:
        raise click.UsageError("give --bodies and/or --jobs (or use `retention clear`)")

    async def action(conn: Any) -> None:
        found = await store.find_app(conn, app)
        if found is None:
            raise click.ClickException(f"no app {app!r}")
        await set_app_retention(conn, found.id, overrides, Actor.cli())

    with_db(action)
    click.echo(
        f"{app} keeps: "
        + ", ".join(f"{k.removesuffix('_days')} {v} d" for k, v in overrides.items())
    )


@retention_group.command("clear")
@click.argument("app")
def clear_app(app: str) -> None:
    """Let APP follow the settings' periods again."""
    from mailer.apps import store
    from mailer.audit import Actor
    from mailer.lifecycle.retention import set_app_retention

    async def action(conn: Any) -> None:
        found = await store.find_app(conn, app)
        if found is None:
            raise click.ClickException(f"no app {app!r}")
        await set_app_retention(conn, found.id, None, Actor.cli())

    with_db(action)
    click.echo(f"{app} follows the settings' periods")
