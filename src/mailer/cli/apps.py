"""Managing apps and their API keys: `mailer apps …`."""

from __future__ import annotations

from typing import Any

import click

from mailer.cli.common import (
    main,
    print_json,
    with_db,
)


@main.group()
def apps() -> None:
    """Manage the apps that send through Mailer, and their API keys."""


@apps.command("create")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print {app_id, api_key} as JSON.")
def apps_create(name: str, as_json: bool) -> None:
    """Create an app and print its API key (shown this once only)."""
    from mailer.apps import store

    try:
        app, key = with_db(lambda conn: store.create_app(conn, name))
    except store.AppExists as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        print_json({"app_id": str(app.id), "name": app.name, "api_key": key})
    else:
        click.echo(f"app {app.name} created: {app.id}")
        click.echo(f"API key (shown once, keep it safe): {key}")


@apps.command("list")
@click.option("--json", "as_json", is_flag=True)
def apps_list(as_json: bool) -> None:
    """List apps."""
    from mailer.apps import store

    rows = with_db(store.list_apps)
    items = [
        {"app_id": str(r["id"]), "name": r["name"], "active_keys": r["active_keys"]} for r in rows
    ]
    if as_json:
        print_json(items)
        return
    for item in items:
        click.echo(f"{item['app_id']}  {item['name']}  keys={item['active_keys']}")


@apps.group("keys")
def keys() -> None:
    """Create, list and revoke an app's API keys."""


@keys.command("create")
@click.argument("app")
@click.option("--json", "as_json", is_flag=True)
def keys_create(app: str, as_json: bool) -> None:
    """Add an API key to APP (id or name); prints it once."""
    from mailer.apps import store

    async def action(conn: Any) -> tuple[Any, str]:
        found = await store.find_app(conn, app)
        if found is None:
            raise click.ClickException(f"no app {app!r}")
        return found, await store.create_key(conn, found.id)

    found, key = with_db(action)
    if as_json:
        print_json({"app_id": str(found.id), "api_key": key})
    else:
        click.echo(f"API key for {found.name} (shown once): {key}")


@keys.command("list")
@click.argument("app")
def keys_list(app: str) -> None:
    """List APP's keys (prefixes only; secrets are never stored)."""
    from mailer.apps import store

    async def action(conn: Any) -> list[Any]:
        found = await store.find_app(conn, app)
        if found is None:
            raise click.ClickException(f"no app {app!r}")
        return await store.list_keys(conn, found.id)

    for row in with_db(action):
        state = f"revoked {row['revoked_at']:%Y-%m-%d}" if row["revoked_at"] else "active"
        click.echo(f"{row['id']}  mk_{row['prefix']}_…  {state}")


@keys.command("revoke")
@click.argument("key")
def keys_revoke(key: str) -> None:
    """Revoke a key by its id or prefix."""
    from mailer.apps import store

    if not with_db(lambda conn: store.revoke_key(conn, key)):
        raise click.ClickException(f"no active key {key!r}")
    click.echo("revoked")


# --- Mailjet account setup -----------------------------------------------------------------
