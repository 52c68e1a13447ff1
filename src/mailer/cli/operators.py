"""Managing the dashboard's operators: `mailer operators …`."""

from __future__ import annotations

from typing import Any

import click

from mailer.cli.common import main, print_json, with_db


@main.group()
def operators() -> None:
    """Manage the people who may use the dashboard at /dashboard."""


@operators.command("add")
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice(["admin", "viewer"]),
    required=True,
    help="admin: may act (e.g. remove a suppression); viewer: may only look.",
)
@click.option("--json", "as_json", is_flag=True, help="Print {name, role, password} as JSON.")
def operators_add(name: str, role: str, as_json: bool) -> None:
    """Add an operator and print its password (generated, shown this once only)."""
    from mailer.dashboard import operators as store

    async def action(conn: Any) -> Any:
        try:
            return await store.add_operator(conn, name, store.Role(role))
        except store.InvalidOperatorName as exc:
            raise click.ClickException(str(exc)) from None

    added = with_db(action)
    if added is None:
        raise click.ClickException(f"an operator named {name!r} exists")
    operator, password = added
    if as_json:
        print_json({"name": operator.name, "role": operator.role, "password": password})
    else:
        click.echo(f"operator {operator.name} ({operator.role})")
        click.echo(f"password (shown once, keep it safe): {password}")


@operators.command("list")
@click.option("--json", "as_json", is_flag=True)
def operators_list(as_json: bool) -> None:
    """List operators, with their role and when they last used the dashboard."""
    from mailer.dashboard import operators as store

    items = [
        {
            "name": r.name,
            "role": r.role,
            "created_at": r.created_at.isoformat(),
            "disabled": r.disabled_at is not None,
            "last_seen_at": None if r.last_seen_at is None else r.last_seen_at.isoformat(),
        }
        for r in with_db(store.list_operators)
    ]
    if as_json:
        print_json(items)
        return
    for item in items:
        state = "  disabled" if item["disabled"] else ""
        seen = item["last_seen_at"] or "never"
        click.echo(f"{item['name']}  {item['role']}  last seen {seen}{state}")


@operators.command("remove")
@click.argument("name")
def operators_remove(name: str) -> None:
    """Remove an operator; its sessions end at once."""
    from mailer.dashboard import operators as store

    if not with_db(lambda conn: store.remove_operator(conn, name)):
        raise click.ClickException(f"no operator named {name!r}")
    click.echo(f"removed operator {name}")


@operators.command("disable")
@click.argument("name")
def operators_disable(name: str) -> None:
    """Keep an operator but refuse its logins; its sessions end at once."""
    from mailer.dashboard import operators as store

    if not with_db(lambda conn: store.disable_operator(conn, name)):
        raise click.ClickException(f"no operator named {name!r}")
    click.echo(f"disabled operator {name}")
