"""What every `mailer` command shares: settings, the event loop, JSON output, a database."""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import click
import orjson

from mailer.config import ConfigError, Settings, load_settings

T = TypeVar("T")

# platformdirs warns on every start where XDG_RUNTIME_DIR is unset (root shells, CI).
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")


@click.group()
@click.version_option(package_name="mailer")
def main() -> None:
    """Mailer: queue email over HTTP, send it through Mailjet, track what became of it."""


def settings_or_exit() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def started_or_exit(check: Callable[..., T], *args: Any) -> T:
    """Run a start-up check; its `StartupError` ends the command with that one line."""
    from mailer.runtime import StartupError

    try:
        return check(*args)
    except StartupError as exc:
        raise click.ClickException(str(exc)) from None


def with_event_credentials(settings: Settings) -> Settings:
    """The settings with `/events` credentials (generated for a simulator run); a clear
    error when Mailjet keys are set without them."""
    from mailer.tracking.credentials import ensure_event_credentials

    try:
        return ensure_event_credentials(settings)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard] on Linux
        return asyncio.run(coro)


def print_json(value: Any) -> None:
    click.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode())


def with_db(action: Callable[[Any], Awaitable[T]]) -> T:
    from mailer import runtime
    from mailer.db.pool import connect

    settings = settings_or_exit()

    async def go(dsn: str) -> T:
        await runtime.apply_migrations(dsn)
        conn = await connect(dsn)
        try:
            return await action(conn)
        finally:
            await conn.close()

    with runtime.database(settings) as dsn:
        return run_async(go(dsn))
