"""Secrets at rest: `mailer secrets generate-key`, `mailer secrets rotate`."""

from __future__ import annotations

from typing import Any

import click

from mailer.cli.common import main, settings_or_exit, with_db


@main.group("secrets")
def secrets_group() -> None:
    """The key that seals webhook secrets at rest (MAILER_SECRET_KEY)."""


@secrets_group.command("generate-key")
def generate_key() -> None:
    """Print a new key for MAILER_SECRET_KEY (put it first to rotate, then run `rotate`)."""
    from mailer.vault import generate_key as new_key

    click.echo(new_key())


@secrets_group.command("rotate")
def rotate() -> None:
    """Re-seal every stored secret with the first key of MAILER_SECRET_KEY.

    Rotating: set MAILER_SECRET_KEY to `NEW,OLD` on every process, run this, then drop OLD.
    Secrets still stored in clear (from before sealing) are sealed too.
    """
    from mailer import audit
    from mailer.audit import Actor
    from mailer.config import ConfigError
    from mailer.lifecycle import address_key
    from mailer.vault import SecretUnreadable, box_for
    from mailer.webhooks import sealed

    try:
        box = box_for(settings_or_exit())
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if box is None:
        raise click.ClickException("MAILER_SECRET_KEY: must be set to rotate (newest key first)")

    async def action(conn: Any) -> tuple[int, int]:
        try:
            async with conn.transaction():
                endpoints = await sealed.reseal_all(conn, box)
                own = await address_key.reseal(conn, box)
                details = {"endpoints": endpoints, "own": own, "keys": box.key_count}
                await audit.record(conn, Actor.cli(), "secrets.resealed", details=details)
        except SecretUnreadable as exc:
            raise click.ClickException(str(exc)) from None
        return endpoints, own

    endpoints, own = with_db(action)
    click.echo(
        f"re-sealed the secrets of {endpoints} webhook endpoint(s) and {own} of Mailer's own "
        "with the first key"
    )
    if box.key_count > 1:
        click.echo("the other keys of MAILER_SECRET_KEY can now be removed", err=True)
