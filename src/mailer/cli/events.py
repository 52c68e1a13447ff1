"""Tracking events: `mailer events reprocess`."""

from __future__ import annotations

import click

from mailer import logs
from mailer.cli.common import (
    main,
    print_json,
    run_async,
    settings_or_exit,
)


@main.group()
def events() -> None:
    """Mailjet tracking events stored by Mailer."""


@events.command("reprocess")
@click.option("--batch", type=click.IntRange(1, 10_000), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
def events_reprocess(batch: int, as_json: bool) -> None:
    """Re-derive events, statuses and suppressions from the stored callback bodies.

    Run it after a parser fix. Safe to repeat: a second run changes nothing. Event ids and
    the feed order stay as they are.
    """
    from mailer import runtime
    from mailer.db.pool import create_pool
    from mailer.tracking.reprocess import reprocess

    settings = settings_or_exit()
    logs.configure(settings.log_level, settings.log_format)

    async def go(dsn: str) -> dict[str, int]:
        await runtime.check_migrations(dsn)
        pool = await create_pool(dsn, min_size=1, max_size=2)
        try:
            return (
                await reprocess(pool, batch=batch, scanner_seconds=settings.scanner_click_seconds)
            ).as_dict()
        finally:
            await pool.close()

    with runtime.database(settings) as dsn:
        counts = run_async(go(dsn))
    if as_json:
        print_json(counts)
    else:
        click.echo(" ".join(f"{name}={value}" for name, value in counts.items()))
