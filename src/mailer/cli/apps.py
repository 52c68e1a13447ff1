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
@click.option(
    "--exist-ok",
    is_flag=True,
    help="If the app exists, add a new key (every scope) to it instead of failing.",
)
def apps_create(name: str, as_json: bool, exist_ok: bool) -> None:
    """Create an app and print its API key (shown this once only)."""
    from mailer.apps import store

    async def action(conn: Any) -> tuple[Any, str]:
        try:
            return await store.create_app(conn, name)
        except store.AppExists as exc:
            found = await store.find_app(conn, name) if exist_ok else None
            if found is None:
                raise click.ClickException(f"{exc} (or pass --exist-ok to do that here)") from None
            return found, (await store.create_key(conn, found.id)).plaintext

    app, key = with_db(action)
    if as_json:
        print_json({"app_id": str(app.id), "name": app.name, "api_key": key})
    else:
        click.echo(f"app {app.name}: {app.id}")
        click.echo(f"API key (shown once, keep it safe): {key}")


@apps.command("list")
@click.option("--json", "as_json", is_flag=True)
def apps_list(as_json: bool) -> None:
    """List apps."""
    from mailer.apps import store

    rows = with_db(store.list_apps)
    items: list[dict[str, Any]] = [
        {
            "app_id": str(r.id),
            "name": r.name,
            "active_keys": r.active_keys,
            "sender_domains": r.sender_domains,
        }
        for r in rows
    ]
    if as_json:
        print_json(items)
        return
    for item in items:
        senders = ",".join(item["sender_domains"] or ["any"])
        click.echo(
            f"{item['app_id']}  {item['name']}  keys={item['active_keys']}  senders={senders}"
        )


async def _app_or_fail(conn: Any, app: str) -> Any:
    from mailer.apps import store

    found = await store.find_app(conn, app)
    if found is None:
        raise click.ClickException(f"no app {app!r}")
    return found


@apps.group("keys")
def keys() -> None:
    """Create, list and revoke an app's API keys."""


@keys.command("create")
@click.argument("app")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    type=click.Choice(["send", "read", "webhooks"]),
    help="What the key may do (repeatable): send, read, webhooks. Default: all three.",
)
@click.option(
    "--expires",
    metavar="LIFETIME",
    help="Let the key expire after LIFETIME (90d, 12h, 30m). Default: until revoked.",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print {app_id, key_id, api_key, scopes, expires_at}."
)
def keys_create(app: str, scopes: tuple[str, ...], expires: str | None, as_json: bool) -> None:
    """Add an API key to APP (id or name); prints it once."""
    from datetime import UTC, datetime

    from mailer.apps import keys, store

    expires_at = None
    if expires is not None:
        try:
            expires_at = datetime.now(UTC) + keys.parse_lifetime(expires)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--expires") from None

    async def action(conn: Any) -> tuple[Any, store.CreatedKey]:
        found = await _app_or_fail(conn, app)
        return found, await store.create_key(conn, found.id, scopes, expires_at=expires_at)

    found, key = with_db(action)
    if as_json:
        print_json(
            {
                "app_id": str(found.id),
                "key_id": str(key.id),
                "api_key": key.plaintext,
                "scopes": key.scopes,
                "expires_at": key.expires_at,
            }
        )
    else:
        until = "" if key.expires_at is None else f", expires {_when(key.expires_at)} UTC"
        click.echo(f"API key {key.id} for {found.name}, scopes {','.join(key.scopes)}{until}")
        click.echo(f"(shown once, keep it safe): {key.plaintext}")


def _when(value: Any) -> str:
    return "never" if value is None else f"{value:%Y-%m-%d %H:%M}"


@keys.command("list")
@click.argument("app")
@click.option("--json", "as_json", is_flag=True)
def keys_list(app: str, as_json: bool) -> None:
    """List APP's keys: prefix, scopes, last use (prefixes only; secrets are never stored).

    `keys revoke` takes the prefix as shown here."""
    from mailer.apps import store

    async def action(conn: Any) -> list[Any]:
        found = await _app_or_fail(conn, app)
        return await store.list_keys(conn, found.id)

    rows = with_db(action)
    if as_json:
        print_json(
            [
                {
                    "key_id": str(r.id),
                    "prefix": f"mk_{r.prefix}",
                    "scopes": list(r.scopes),
                    "created_at": r.created_at,
                    "last_used_at": r.last_used_at,
                    "revoked_at": r.revoked_at,
                    "expires_at": r.expires_at,
                }
                for r in rows
            ]
        )
        return
    for row in rows:
        click.echo(
            f"{row.id}  mk_{row.prefix}_…  {_key_state(row)}  scopes={','.join(row.scopes)}"
            f"  last used {_when(row.last_used_at)}"
        )


def _key_state(row: Any) -> str:
    from datetime import UTC, datetime

    if row.revoked_at is not None:
        return f"revoked {row.revoked_at:%Y-%m-%d}"
    if row.expires_at is None:
        return "active"
    if row.expires_at <= datetime.now(UTC):
        return f"expired {row.expires_at:%Y-%m-%d}"
    return f"active until {row.expires_at:%Y-%m-%d %H:%M}"


@keys.command("revoke")
@click.argument("key")
def keys_revoke(key: str) -> None:
    """Revoke a key by its id or its prefix (as `keys list` shows it: mk_<prefix>_…)."""
    from mailer.apps import store

    if not with_db(lambda conn: store.revoke_key(conn, key)):
        raise click.ClickException(f"no active key {key!r}")
    click.echo("revoked")


@apps.group("senders")
def senders() -> None:
    """Limit the domains an app may send from (its From addresses)."""


@senders.command("set")
@click.argument("app")
@click.argument("domains", nargs=-1, required=True)
def senders_set(app: str, domains: tuple[str, ...]) -> None:
    """Let APP send only from DOMAINS (e.g. shop.example mail.shop.example)."""
    from mailer.apps import access, store

    async def action(conn: Any) -> None:
        found = await _app_or_fail(conn, app)
        try:
            await store.set_sender_domains(conn, found.id, list(domains))
        except access.InvalidDomain as exc:
            raise click.ClickException(str(exc)) from None

    with_db(action)
    click.echo(f"{app} may send from: {', '.join(sorted({d.lower() for d in domains}))}")


@senders.command("clear")
@click.argument("app")
def senders_clear(app: str) -> None:
    """Let APP send from any domain again."""
    from mailer.apps import store

    async def action(conn: Any) -> None:
        found = await _app_or_fail(conn, app)
        await store.set_sender_domains(conn, found.id, None)

    with_db(action)
    click.echo(f"{app} may send from any domain")


@senders.command("show")
@click.argument("app")
def senders_show(app: str) -> None:
    """The domains APP may send from."""

    async def action(conn: Any) -> Any:
        return await _app_or_fail(conn, app)

    found = with_db(action)
    click.echo(", ".join(found.sender_domains) if found.sender_domains else "any domain")


# --- Mailjet account setup -----------------------------------------------------------------
