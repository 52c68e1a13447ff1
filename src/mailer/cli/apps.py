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
    """List apps: keys, sender domains, pause, rate and daily quota."""
    from mailer.apps import store

    rows = with_db(store.list_apps)
    items: list[dict[str, Any]] = [
        {
            "app_id": str(r.id),
            "name": r.name,
            "active_keys": r.active_keys,
            "sender_domains": r.sender_domains,
            "paused": r.paused_at is not None,
            "rate_per_second": r.rate_per_second,
            "daily_quota": r.daily_quota,
        }
        for r in rows
    ]
    if as_json:
        print_json(items)
        return
    for row in rows:
        senders = ",".join(row.sender_domains or ["any"])
        line = f"{row.id}  {row.name}  keys={row.active_keys}  senders={senders}"
        if row.paused_at is not None:
            line += "  PAUSED"
        if row.rate_per_second is not None:
            line += f"  rate={row.rate_per_second:g}/s"
        if row.daily_quota is not None:
            line += f"  daily={row.daily_quota}"
        click.echo(line)


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


@apps.command("pause")
@click.argument("app")
def apps_pause(app: str) -> None:
    """Stop sending APP's email: its jobs stay queued, nothing is lost, until `resume`."""
    from mailer.delivery import limits

    async def action(conn: Any) -> Any:
        found = await _app_or_fail(conn, app)
        return await limits.pause(conn, found.id)

    paused_at = with_db(action)
    click.echo(f"{app} paused since {paused_at:%Y-%m-%d %H:%M:%S %Z}; its jobs wait queued")


@apps.command("resume")
@click.argument("app")
def apps_resume(app: str) -> None:
    """Send APP's email again (at its rate, if it has one), starting with the oldest."""
    from mailer.delivery import limits

    async def action(conn: Any) -> int:
        found = await _app_or_fail(conn, app)
        return await limits.resume(conn, found.id)

    released = with_db(action)
    click.echo(f"{app} resumed ({released} held jobs back in the queue)")


@apps.group("limits")
def limits_group() -> None:
    """An app's sending rate and daily quota, enforced across all workers."""


@limits_group.command("set")
@click.argument("app")
@click.option("--rate", type=float, help="Emails per second, for all workers together.")
@click.option("--daily", type=click.IntRange(min=0), help="Emails accepted per UTC day.")
def limits_set(app: str, rate: float | None, daily: int | None) -> None:
    """Limit APP's sending rate and/or its daily quota (a limit not given is kept)."""
    from mailer.delivery import limits

    if rate is None and daily is None:
        raise click.UsageError("give --rate, --daily or both")

    async def action(conn: Any) -> None:
        found = await _app_or_fail(conn, app)
        try:
            await limits.set_limits(conn, found.id, rate=rate, daily=daily)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None

    with_db(action)
    click.echo(_limits_line(app, rate, daily))


def _limits_line(app: str, rate: float | None, daily: int | None) -> str:
    parts = []
    if rate is not None:
        parts.append(f"at most {rate:g} emails per second")
    if daily is not None:
        parts.append(f"{daily} emails per UTC day")
    return f"{app} may send {' and '.join(parts)}"


@limits_group.command("clear")
@click.argument("app")
def limits_clear(app: str) -> None:
    """Remove APP's rate and daily quota (a pause stays)."""
    from mailer.delivery import limits

    async def action(conn: Any) -> None:
        found = await _app_or_fail(conn, app)
        await limits.clear_limits(conn, found.id)

    with_db(action)
    click.echo(f"{app} has no rate or daily quota")


# --- Mailjet account setup -----------------------------------------------------------------
