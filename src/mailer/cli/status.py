"""`mailer status`: the queue, the workers and Mailjet's events at a glance."""

from __future__ import annotations

from typing import Any

import click

from mailer.cli.common import main, print_json, run_async, settings_or_exit, started_or_exit


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def status(as_json: bool) -> None:
    """Queue depth by state, the oldest due job's wait, live workers, the last Mailjet
    event of each type."""
    from mailer import runtime
    from mailer.db.pool import connect
    from mailer.ops.status import format_report, status_report

    settings = settings_or_exit()

    async def go(dsn: str) -> dict[str, Any]:
        await runtime.check_database(dsn)
        conn = await connect(dsn)
        try:
            return await status_report(conn, silence_after=settings.event_silence_after)
        finally:
            await conn.close()

    with runtime.database(settings) as dsn:
        report = started_or_exit(run_async, go(dsn))
    if as_json:
        print_json(report)
    else:
        click.echo(format_report(report))
