"""Running Mailer: `run`, `api`, `worker`, `simulator`, `migrate`."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import click
import uvicorn

from mailer import logs
from mailer.cli.common import (
    main,
    run_async,
    settings_or_exit,
    started_or_exit,
    with_event_credentials,
)
from mailer.cli.one_write import OneWriteHttpTools
from mailer.config import DEMO_WEBHOOK_NETWORKS, Settings
from mailer.serving import GracefulServer


@main.command()
@click.option("--host", help="Address to listen on (default MAILER_HOST, 127.0.0.1).")
@click.option("--port", type=int, help="Port to listen on (default MAILER_PORT, 8000).")
def run(host: str | None, port: int | None) -> None:
    """Run the API and a worker in one process (the small-install and development default).

    Without DATABASE_URL it starts an embedded PostgreSQL; without Mailjet keys it starts
    the built-in Mailjet simulator and sends there.
    """
    from mailer import runtime

    settings, host, port = _listening_settings(host, port)
    with runtime.database(settings) as dsn:
        started_or_exit(run_async, runtime.check_database(dsn, migrations=False))
        # After the database check: an unreachable database is the one line a start prints.
        smtp_tls = _smtp_tls(settings)
        settings = with_event_credentials(settings)
        run_async(_serve_all(settings, dsn, host, port, smtp_tls))


def _listening_settings(host: str | None, port: int | None) -> tuple[Settings, str, int]:
    """Settings, logging and a free port for a command that serves HTTP, or exit with one line.

    Event credentials are checked first when Mailjet is real: a configuration error comes
    before anything starts.
    """
    from mailer import runtime

    settings = settings_or_exit()
    logs.configure(settings.log_level, settings.log_format)
    if not settings.uses_simulator:
        settings = with_event_credentials(settings)
    listen_host, listen_port = host or settings.host, port or settings.port
    started_or_exit(runtime.check_port, listen_host, listen_port)
    return settings, listen_host, listen_port


def _demo_webhook_networks(settings: Settings) -> Settings:
    """In the demo (the simulator stands in for Mailjet), webhooks may reach receivers on
    this machine unless MAILER_WEBHOOK_ALLOWED_NETWORKS says otherwise."""
    if not settings.uses_simulator or settings.webhook_allowed_networks is not None:
        return settings
    click.echo(
        f"demo: webhooks may reach this machine ({DEMO_WEBHOOK_NETWORKS}); set "
        "MAILER_WEBHOOK_ALLOWED_NETWORKS to change that",
        err=True,
    )
    return settings.model_copy(update={"webhook_allowed_networks": DEMO_WEBHOOK_NETWORKS})


def _smtp_tls(settings: Settings) -> Any:
    """The STARTTLS context for `run`'s SMTP submission, checked before anything starts."""
    if settings.smtp_listen_port is None:
        return None
    from mailer.smtp.server import tls_for
    from mailer.smtp.tls import TlsUnavailable

    try:
        return tls_for(settings)
    except TlsUnavailable as exc:
        raise click.ClickException(str(exc)) from None


async def _serve_all(
    settings: Settings, dsn: str, host: str, port: int, smtp_tls: Any = None
) -> None:
    from mailer import runtime
    from mailer.api.app import create_app
    from mailer.cli.web import with_dashboard
    from mailer.services import Services

    for name in await runtime.apply_migrations(dsn):
        click.echo(f"applied migration {name}", err=True)
    # Said once everything checked out: a start-up error stays one line.
    settings = _demo_webhook_networks(settings)
    try:
        await runtime.check_secrets(settings, dsn)
    except runtime.StartupError as exc:
        raise click.ClickException(str(exc)) from None
    on_started: Callable[[int], Awaitable[None]] | None = None
    async with contextlib.AsyncExitStack() as stack:
        if settings.uses_simulator:
            simulator = await _start_demo_simulator()
            stack.push_async_callback(simulator.stop)
            stack.callback(runtime.remove_demo_state, settings.data_dir)
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
            async with (
                runtime.running_worker(settings, dsn, services.pool, target) as w,
                _smtp_submission(services, settings, settings.smtp_host or host, smtp_tls),
            ):
                yield w

        if on_started is not None and port != 0:
            # Registered before the worker can send: the simulator, like Mailjet, drops
            # the events of a message accepted while no callback URL is registered.
            await on_started(port)
            on_started = None
        app = with_dashboard(create_app(settings, dsn, companion=worker, process="mailer"))
        await _serve(app, host, port, settings.log_level, on_started=on_started)


@contextlib.asynccontextmanager
async def _smtp_submission(
    services: Any, settings: Settings, host: str, tls: Any
) -> AsyncIterator[None]:
    """SMTP submission beside the API, where `settings.smtp_listen_port` says (on in the
    demo, off in production unless MAILER_SMTP_PORT is set)."""
    port = settings.smtp_listen_port
    if port is None:
        yield
        return
    from mailer.smtp.server import running_submission

    async with contextlib.AsyncExitStack() as stack:
        try:
            server = await stack.enter_async_context(
                running_submission(services, settings, host=host, port=port, tls=tls)
            )
        except OSError as exc:
            if settings.smtp_port is not None:
                raise
            # The demo's default port is taken: the demo goes on without SMTP.
            click.echo(f"SMTP submission not started on {host}:{port}: {exc}", err=True)
        else:
            click.echo(
                f"SMTP submission on {host}:{server.port} (AUTH: any user, API key)", err=True
            )
        yield


async def _start_demo_simulator() -> Any:
    """The built-in simulator, on its fixed port so it is easy to find (the other `mailer`
    commands read it from the demo's state file anyway), else on a free one."""
    from mailer import runtime
    from mailer.simulator.server import SimulatorServer

    for port in (runtime.DEMO_SIMULATOR_PORT, 0):
        simulator = SimulatorServer(
            port=port, api_key=runtime.SIMULATOR_KEY, secret_key=runtime.SIMULATOR_SECRET
        )
        try:
            await simulator.start()
        except OSError:
            if port == 0:
                raise
            continue
        return simulator
    raise AssertionError("unreachable")


def _simulator_events_registration(
    settings: Settings, target: Any, host: str
) -> Callable[[int], Awaitable[None]]:
    """Have the in-process simulator post its tracking events to our
    `/events` (credentials generated for the run if unset), so the demo shows it all; then
    write the demo's state file, through which `mailer mailjet …` in another terminal
    reaches the same simulator."""

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
        try:
            runtime.write_demo_state(settings.data_dir, target, url)
        except OSError as exc:
            click.echo(f"could not write the demo's state file: {exc}", err=True)

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

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        http=OneWriteHttpTools,
        lifespan="on",
        log_config=None,
    )
    click.echo(f"Mailer listening on http://{host}:{port} (OpenAPI at /docs)", err=True)
    server = GracefulServer(config)
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

    from mailer import runtime

    settings, host, port = _listening_settings(host, port)
    with runtime.database(settings) as dsn:
        started_or_exit(run_async, runtime.check_database(dsn))
        started_or_exit(run_async, runtime.check_secrets(settings, dsn))
        settings = with_event_credentials(settings)
        if settings.events_user is not None and settings.events_password is not None:
            # Every API process must accept the same (possibly generated) event credentials.
            os.environ["MAILER_EVENTS_USER"] = settings.events_user
            os.environ["MAILER_EVENTS_PASSWORD"] = settings.events_password.get_secret_value()
        os.environ["DATABASE_URL"] = dsn
        options: dict[str, Any] = {
            "factory": True,
            "host": host,
            "port": port,
            "workers": workers,
            "log_level": settings.log_level,
            "log_config": None,  # uvicorn's lines go through our format too
            "access_log": False,
            "http": OneWriteHttpTools,
            "loop": "uvloop",
        }
        if workers == 1:
            GracefulServer(uvicorn.Config("mailer.cli.web:app_from_env", **options)).run()
            return
        from mailer.metrics.exposition import multiprocess_directory

        # The N processes keep their metrics in files of one directory per service start,
        # and each /metrics adds them all up (docs/operations.md, "Metrics").
        with multiprocess_directory():
            # uvicorn's process supervisor handles the signals in this (parent) process.
            uvicorn.run("mailer.cli.web:app_from_env", **options)


@main.command()
def worker() -> None:
    """Run only a send worker (run as many as you like, on any machine)."""
    from mailer import runtime

    settings = settings_or_exit()
    logs.configure(settings.log_level, settings.log_format)
    try:
        target = runtime.configured_mailjet(settings)
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None
    with runtime.database(settings) as dsn:
        started_or_exit(run_async, runtime.check_database(dsn))
        started_or_exit(run_async, runtime.check_secrets(settings, dsn))
        run_async(_work(settings, dsn, target))


async def _work(settings: Settings, dsn: str, target: Any) -> None:
    import logging
    import os

    from mailer import runtime
    from mailer.config import safe_dsn
    from mailer.db.pool import create_pool
    from mailer.heap import freeze_startup_heap
    from mailer.metrics import count
    from mailer.metrics.pools import PoolSampler
    from mailer.ops.activity import ACTIVITY, Summary

    log = logging.getLogger("mailer.worker")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    count.set_enabled(settings.metrics)
    pool = await create_pool(dsn, min_size=2, max_size=settings.worker_concurrency + 4)
    summary = Summary("worker", interval=settings.log_summary_seconds)
    sampler = PoolSampler(pool, "worker")
    try:
        async with (
            _worker_metrics(settings),  # first: a busy port stops the start at once
            runtime.running_worker(settings, dsn, pool, target) as w,
        ):
            await summary.start()
            sampler.start()
            log.info(
                "worker process started",
                extra={
                    "action": "worker_process_started",
                    "pid": os.getpid(),
                    "worker": w.worker_id,
                }
                | settings.describe()
                | {"database": safe_dsn(dsn), "mailjet": target.url},
            )
            freeze_startup_heap()
            await stop.wait()
            await summary.stop()
            await sampler.stop()
    finally:
        await pool.close()
    log.info(
        "worker process stopped",
        extra={"action": "worker_process_stopped", "pid": os.getpid()} | ACTIVITY.totals(),
    )


@contextlib.asynccontextmanager
async def _worker_metrics(settings: Settings) -> AsyncIterator[None]:
    """A worker's `GET /metrics` on MAILER_METRICS_PORT (none when unset or metrics off)."""
    if settings.metrics_port is None or not settings.metrics:
        yield
        return
    from mailer.metrics.server import MetricsServer

    server = MetricsServer(settings.host, settings.metrics_port)
    try:
        port = await server.start()
    except OSError as exc:
        raise click.ClickException(
            f"MAILER_METRICS_PORT: cannot listen on {settings.host}:{settings.metrics_port} "
            f"({exc.strerror or exc}): set MAILER_METRICS_PORT to a free port"
        ) from None
    click.echo(f"worker metrics on http://{settings.host}:{port}/metrics", err=True)
    try:
        yield
    finally:
        await server.stop()


@main.command()
def migrate() -> None:
    """Apply pending database migrations."""
    from mailer import runtime

    settings = settings_or_exit()
    with runtime.database(settings) as dsn:
        applied = run_async(runtime.apply_migrations(dsn))
    click.echo("\n".join(f"applied {name}" for name in applied) or "already up to date")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8025, show_default=True)
@click.option("--latency-ms", type=float, default=0.0, show_default=True)
@click.option("--events/--no-events", default=True, show_default=True, help="Post tracking events.")
@click.option("--event-delay-ms", type=click.FloatRange(min=0), default=0.0, show_default=True)
@click.option("--event-retry-seconds", type=click.FloatRange(min=0, min_open=True), default=30.0)
@click.option(
    "--private-network",
    is_flag=True,
    help="Allow a private --host (10.x, 192.168.x, fd00::/8), e.g. on a test network of "
    "network namespaces. Its /_sim control routes have no auth: never on a shared network.",
)
def simulator(
    host: str,
    port: int,
    latency_ms: float,
    events: bool,
    event_delay_ms: float,
    event_retry_seconds: float,
    private_network: bool,
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
        private_network=private_network,
    )
