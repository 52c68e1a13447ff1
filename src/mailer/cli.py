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


def _with_event_credentials(settings: Settings) -> Settings:
    """The settings with `/events` credentials (generated for a simulator run); a clear
    error when Mailjet keys are set without them."""
    from mailer.tracking.credentials import ensure_event_credentials

    try:
        return ensure_event_credentials(settings)
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
    settings = _with_event_credentials(settings)
    with runtime.database(settings) as dsn:
        _run(_serve_all(settings, dsn, host or settings.host, port or settings.port))


async def _serve_all(settings: Settings, dsn: str, host: str, port: int) -> None:
    from mailer import runtime
    from mailer.api.app import create_app
    from mailer.services import Services

    for name in await runtime.apply_migrations(dsn):
        click.echo(f"applied migration {name}", err=True)
    on_started: Callable[[int], Awaitable[None]] | None = None
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
            on_started = _simulator_events_registration(settings, target, host)
        else:
            target = runtime.configured_mailjet(settings)

        @contextlib.asynccontextmanager
        async def worker(services: Services) -> AsyncIterator[object]:
            async with runtime.running_worker(settings, dsn, services.pool, target) as w:
                yield w

        app = create_app(settings, dsn, companion=worker)
        await _serve(app, host, port, settings.log_level, on_started=on_started)


def _simulator_events_registration(
    settings: Settings, target: Any, host: str
) -> Callable[[int], Awaitable[None]]:
    """Once the API listens: have the in-process simulator post its tracking events to our
    `/events` (credentials generated for the run if unset), so the demo shows it all."""

    async def register(port: int) -> None:
        from mailer import runtime
        from mailer.mailjet import MailjetError
        from mailer.mailjet.registration import mask_url

        try:
            url = await runtime.register_events_with_simulator(settings, target, host, port)
        except (MailjetError, ValueError) as exc:
            click.echo(f"could not register /events with the simulator: {exc}", err=True)
            return
        click.echo(f"the simulator posts tracking events to {mask_url(url)}", err=True)

    return register


async def _serve(
    app: Any,
    host: str,
    port: int,
    log_level: str,
    *,
    on_started: Callable[[int], Awaitable[None]] | None = None,
) -> None:
    """Serve `app` until stopped; `on_started(port)` runs once it accepts connections."""
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
    server = uvicorn.Server(config)
    serving = asyncio.ensure_future(server.serve())
    if on_started is not None:
        while not server.started and not serving.done():
            await asyncio.wait([serving], timeout=0.05)
        if server.started:
            bound = server.servers[0].sockets[0].getsockname()[1] if server.servers else port
            await on_started(bound)
    await serving


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
    settings = _with_event_credentials(settings)
    if settings.events_user is not None and settings.events_password is not None:
        # Every API process must accept the same (possibly generated) event credentials.
        os.environ["MAILER_EVENTS_USER"] = settings.events_user
        os.environ["MAILER_EVENTS_PASSWORD"] = settings.events_password.get_secret_value()
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
@click.option("--events/--no-events", default=True, show_default=True, help="Post tracking events.")
@click.option("--event-delay-ms", type=click.FloatRange(min=0), default=0.0, show_default=True)
@click.option("--event-retry-seconds", type=click.FloatRange(min=0, min_open=True), default=30.0)
def simulator(
    host: str,
    port: int,
    latency_ms: float,
    events: bool,
    event_delay_ms: float,
    event_retry_seconds: float,
) -> None:
    """Run the Mailjet-compatible simulator (for demos, tests and benchmarks).

    It posts tracking events scripted by the recipient address (ann+click@x: sent, open,
    click; see docs/simulator.md) to the URLs registered with it; --no-events for benchmarks.
    """
    from mailer import runtime
    from mailer.simulator.events import EventsConfig
    from mailer.simulator.faults import FaultConfig
    from mailer.simulator.server import run_simulator

    run_simulator(
        host=host,
        port=port,
        api_key=runtime.SIMULATOR_KEY,
        secret_key=runtime.SIMULATOR_SECRET,
        faults=FaultConfig(latency_ms=latency_ms),
        events=EventsConfig(
            enabled=events, delay_ms=event_delay_ms, retry_interval=event_retry_seconds
        ),
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


# --- Mailjet account setup -----------------------------------------------------------------


@main.group()
def mailjet() -> None:
    """Mailjet account setup: where Mailjet posts its tracking events."""


def _mailjet_call(settings: Settings, call: Callable[[Any], Awaitable[T]]) -> T:
    """Run `call(client)` against the configured Mailjet (or a `mailer simulator`)."""
    from mailer import runtime
    from mailer.mailjet import MailjetClient, MailjetError

    try:
        target = runtime.configured_mailjet(settings)
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None

    async def go() -> T:
        async with MailjetClient(target.url, target.api_key, target.secret_key) as client:
            return await call(client)

    try:
        return _run(go())
    except MailjetError as exc:
        raise click.ClickException(f"Mailjet ({target.url}): {exc}") from None


@mailjet.command("register-webhook")
@click.argument("public_url")
@click.option("--dry-run", is_flag=True, help="Print what would change; change nothing.")
def mailjet_register_webhook(public_url: str, dry_run: bool) -> None:
    """Register PUBLIC_URL, Mailer's /events as Mailjet reaches it, for all seven event types.

    MAILER_EVENTS_USER/MAILER_EVENTS_PASSWORD are embedded in the URL (Mailjet's only way
    to authenticate its callbacks); events are grouped (Version 2). Idempotent: missing
    records are created, wrong ones updated, right ones left alone.
    """
    from mailer.mailjet import registration

    settings = _settings()
    if settings.events_user is None or settings.events_password is None:
        raise click.ClickException(
            "set MAILER_EVENTS_USER and MAILER_EVENTS_PASSWORD (the API must use the same) "
            "before registering: Mailjet sends them with every event"
        )
    settings = _with_event_credentials(settings)  # validates them
    assert settings.events_user is not None and settings.events_password is not None
    try:
        url = registration.webhook_url(
            public_url, settings.events_user, settings.events_password.get_secret_value()
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="PUBLIC_URL") from None
    if registration.is_cleartext(url):
        click.echo("warning: plain http: the credentials will cross the network in clear", err=True)
    actions = _mailjet_call(
        settings, lambda client: registration.register(client, url, dry_run=dry_run)
    )
    for action in actions:
        click.echo(("(dry run) " if dry_run else "") + action.describe())
    click.echo(registration.summary(actions, dry_run=dry_run))


@mailjet.command("webhooks")
@click.option("--json", "as_json", is_flag=True, help="Print the records as JSON.")
def mailjet_webhooks(as_json: bool) -> None:
    """List the event callback URLs registered with Mailjet (passwords masked)."""
    from mailer.mailjet.registration import describe_callback, mask_url

    records = _mailjet_call(_settings(), lambda client: client.list_event_callbacks())
    records.sort(key=lambda r: (r.event_type, r.is_backup, r.id))
    if as_json:
        _print_json(
            [
                {
                    "id": r.id,
                    "event_type": r.event_type,
                    "url": mask_url(r.url),
                    "status": r.status,
                    "is_backup": r.is_backup,
                    "version": r.version,
                }
                for r in records
            ]
        )
        return
    for record in records:
        click.echo(describe_callback(record))
    if not records:
        click.echo("no event callback URLs registered")


# --- tracking events -----------------------------------------------------------------------


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

    settings = _settings()
    logs.configure(settings.log_level)

    async def go(dsn: str) -> dict[str, int]:
        await runtime.check_migrations(dsn)
        pool = await create_pool(dsn, min_size=1, max_size=2)
        try:
            return (await reprocess(pool, batch=batch)).as_dict()
        finally:
            await pool.close()

    with runtime.database(settings) as dsn:
        counts = _run(go(dsn))
    if as_json:
        _print_json(counts)
    else:
        click.echo(" ".join(f"{name}={value}" for name, value in counts.items()))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
