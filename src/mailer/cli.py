"""The `mailer` command: run the service or its parts, migrate, manage apps and keys."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import click
import orjson

from mailer import logs
from mailer.config import ConfigError, Settings, load_settings

T = TypeVar("T")

# platformdirs warns on every start where XDG_RUNTIME_DIR is unset (root shells, CI).
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard] on Linux
        return asyncio.run(coro)


def _print_json(value: Any) -> None:
    click.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode())


@click.group()
@click.version_option(package_name="mailer")
def main() -> None:
    """Mailer: queue email over HTTP, send it through Mailjet, track what became of it."""


@main.command()
@click.option("--host", help="Address to listen on (default MAILER_HOST, 127.0.0.1).")
@click.option("--port", type=int, help="Port to listen on (default MAILER_PORT, 8000).")
def run(host: str | None, port: int | None) -> None:
    """Run the API and a worker in one process (the small-install and development default).

    Without DATABASE_URL it starts an embedded PostgreSQL; without Mailjet keys it starts
    the built-in Mailjet simulator and sends there.
    """
    from mailer import runtime

    settings = _settings()
    logs.configure(settings.log_level)
    with runtime.database(settings) as dsn:
        _run(_serve_all(settings, dsn, host or settings.host, port or settings.port))


async def _serve_all(settings: Settings, dsn: str, host: str, port: int) -> None:
    from mailer import runtime
    from mailer.api.app import create_app
    from mailer.services import Services

    for name in await runtime.apply_migrations(dsn):
        click.echo(f"applied migration {name}", err=True)
    async with contextlib.AsyncExitStack() as stack:
        if settings.uses_simulator:
            from mailer.simulator.server import SimulatorServer

            simulator = SimulatorServer(
                api_key=runtime.SIMULATOR_KEY, secret_key=runtime.SIMULATOR_SECRET
            )
            await simulator.start()
            stack.push_async_callback(simulator.stop)
            target = runtime.MailjetTarget(
                simulator.url, runtime.SIMULATOR_KEY, runtime.SIMULATOR_SECRET
            )
            click.echo(
                f"no Mailjet keys set: sending to the built-in Mailjet simulator at "
                f"{simulator.url} (nothing leaves this machine)",
                err=True,
            )
        else:
            target = runtime.configured_mailjet(settings)

        @contextlib.asynccontextmanager
        async def worker(services: Services) -> AsyncIterator[object]:
            async with runtime.running_worker(settings, dsn, services.pool, target) as w:
                yield w

        app = create_app(settings, dsn, companion=worker)
        await _serve(app, host, port, settings.log_level)


async def _serve(app: Any, host: str, port: int, log_level: str) -> None:
    import uvicorn

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        http="httptools",
        lifespan="on",
        log_config=None,
    )
    click.echo(f"Mailer listening on http://{host}:{port} (OpenAPI at /docs)", err=True)
    await uvicorn.Server(config).serve()


@main.command()
@click.option("--host", help="Address to listen on (default MAILER_HOST).")
@click.option("--port", type=int, help="Port to listen on (default MAILER_PORT).")
@click.option("--workers", type=int, default=1, show_default=True, help="API processes.")
def api(host: str | None, port: int | None, workers: int) -> None:
    """Run only the HTTP API (stateless: run as many as you like)."""
    import os

    import uvicorn

    from mailer import runtime

    settings = _settings()
    logs.configure(settings.log_level)
    with runtime.database(settings) as dsn:
        _run(runtime.check_migrations(dsn))
        os.environ["DATABASE_URL"] = dsn
        uvicorn.run(
            "mailer.api.app:app_from_env",
            factory=True,
            host=host or settings.host,
            port=port or settings.port,
            workers=workers,
            log_level=settings.log_level,
            access_log=False,
            http="httptools",
            loop="uvloop",
        )


@main.command()
def worker() -> None:
    """Run only a send worker (run as many as you like, on any machine)."""
    from mailer import runtime

    settings = _settings()
    logs.configure(settings.log_level)
    try:
        target = runtime.configured_mailjet(settings)
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None
    with runtime.database(settings) as dsn:
        _run(_work(settings, dsn, target))


async def _work(settings: Settings, dsn: str, target: Any) -> None:
    from mailer import runtime
    from mailer.db.pool import create_pool

    await runtime.check_migrations(dsn)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    pool = await create_pool(dsn, min_size=2, max_size=settings.worker_concurrency + 4)
    try:
        async with runtime.running_worker(settings, dsn, pool, target):
            await stop.wait()
    finally:
        await pool.close()


@main.command()
def migrate() -> None:
    """Apply pending database migrations."""
    from mailer import runtime

    settings = _settings()
    with runtime.database(settings) as dsn:
        applied = _run(runtime.apply_migrations(dsn))
    click.echo("\n".join(f"applied {name}" for name in applied) or "already up to date")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8025, show_default=True)
@click.option("--latency-ms", type=float, default=0.0, show_default=True)
def simulator(host: str, port: int, latency_ms: float) -> None:
    """Run the Mailjet-compatible simulator (for demos, tests and benchmarks)."""
    from mailer import runtime
    from mailer.simulator.faults import FaultConfig
    from mailer.simulator.server import run_simulator

    run_simulator(
        host=host,
        port=port,
        api_key=runtime.SIMULATOR_KEY,
        secret_key=runtime.SIMULATOR_SECRET,
        faults=FaultConfig(latency_ms=latency_ms),
    )


# --- apps and keys -------------------------------------------------------------------------


def _with_db(action: Callable[[Any], Awaitable[T]]) -> T:
    from mailer import runtime
    from mailer.db.pool import connect

    settings = _settings()

    async def go(dsn: str) -> T:
        await runtime.apply_migrations(dsn)
        conn = await connect(dsn)
        try:
            return await action(conn)
        finally:
            await conn.close()

    with runtime.database(settings) as dsn:
        return _run(go(dsn))


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
        app, key = _with_db(lambda conn: store.create_app(conn, name))
    except store.AppExists as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        _print_json({"app_id": str(app.id), "name": app.name, "api_key": key})
    else:
        click.echo(f"app {app.name} created: {app.id}")
        click.echo(f"API key (shown once, keep it safe): {key}")


@apps.command("list")
@click.option("--json", "as_json", is_flag=True)
def apps_list(as_json: bool) -> None:
    """List apps."""
    from mailer.apps import store

    rows = _with_db(store.list_apps)
    items = [
        {"app_id": str(r["id"]), "name": r["name"], "active_keys": r["active_keys"]} for r in rows
    ]
    if as_json:
        _print_json(items)
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

    found, key = _with_db(action)
    if as_json:
        _print_json({"app_id": str(found.id), "api_key": key})
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

    for row in _with_db(action):
        state = f"revoked {row['revoked_at']:%Y-%m-%d}" if row["revoked_at"] else "active"
        click.echo(f"{row['id']}  mk_{row['prefix']}_…  {state}")


@keys.command("revoke")
@click.argument("key")
def keys_revoke(key: str) -> None:
    """Revoke a key by its id or prefix."""
    from mailer.apps import store

    if not _with_db(lambda conn: store.revoke_key(conn, key)):
        raise click.ClickException(f"no active key {key!r}")
    click.echo("revoked")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
