"""`mailer erase ADDRESS`: erase a recipient's data (GDPR art. 17)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import click

from mailer.cli.common import main, print_json, settings_or_exit, with_db


@main.command("erase")
@click.argument("address")
@click.option("--app", "app", help="Only this app's data about ADDRESS (id or name).")
@click.option("--json", "as_json", is_flag=True, help="Print what was removed as JSON.")
def erase_command(address: str, app: str | None, as_json: bool) -> None:
    """Erase every trace of ADDRESS: its jobs (bodies, headers, metadata), recipients,
    events, raw callback entries, webhook deliveries and attempts. A suppression stays,
    as a keyed hash that still blocks sending; the audit log records that an erasure
    happened, not the address."""
    from mailer.apps import store
    from mailer.audit import Actor
    from mailer.config import ConfigError
    from mailer.lifecycle.erasure import erase
    from mailer.vault import box_for

    if "@" not in address:
        raise click.BadParameter("give an email address", param_hint="ADDRESS")
    try:
        box = box_for(settings_or_exit())
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if box is None:
        raise click.ClickException(
            "MAILER_SECRET_KEY: must be set: an erased address's suppression is kept as a "
            "hash keyed with it"
        )

    async def action(conn: Any) -> Any:
        app_id = None
        if app is not None:
            found = await store.find_app(conn, app)
            if found is None:
                raise click.ClickException(f"no app {app!r}")
            app_id = found.id
        return await erase(conn, address, app_id=app_id, box=box, actor=Actor.cli())

    erased = with_db(action)
    if as_json:
        print_json(asdict(erased))
        return
    click.echo(
        "erased: "
        + ", ".join(f"{count} {what.replace('_', ' ')}" for what, count in asdict(erased).items())
    )
