"""`mailer smtp`: SMTP submission on its own (`mailer run` also serves it, see `serve`)."""

from __future__ import annotations

import asyncio
import signal
import ssl

import click

from mailer import logs
from mailer.cli.common import main, run_async, settings_or_exit
from mailer.config import DEMO_SMTP_PORT, Settings


@main.command()
@click.option("--host", help="Address to listen on (default MAILER_SMTP_HOST, else MAILER_HOST).")
@click.option("--port", type=int, help=f"Port (default MAILER_SMTP_PORT, else {DEMO_SMTP_PORT}).")
def smtp(host: str | None, port: int | None) -> None:
    """Run an SMTP submission server: apps AUTH with their API key as password, and each
    message is queued as `POST /queue` would queue it (run as many as you like)."""
    from mailer import runtime
    from mailer.smtp.server import tls_for
    from mailer.smtp.tls import TlsUnavailable

    settings = settings_or_exit()
    logs.configure(settings.log_level)
    if port is None:
        port = settings.smtp_port if isinstance(settings.smtp_port, int) else DEMO_SMTP_PORT
    try:
        tls = tls_for(settings)
    except TlsUnavailable as exc:
        raise click.ClickException(str(exc)) from None
    with runtime.database(settings) as dsn:
        run_async(
            _serve_smtp(settings, dsn, host or settings.smtp_host or settings.host, port, tls)
        )


async def _serve_smtp(
    settings: Settings, dsn: str, host: str, port: int, tls: ssl.SSLContext | None
) -> None:
    from mailer import runtime
    from mailer.services import Services
    from mailer.smtp.server import running_submission

    await runtime.check_migrations(dsn)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    services = await Services.open(settings, dsn)
    try:
        async with running_submission(services, settings, host=host, port=port, tls=tls) as server:
            click.echo(f"Mailer SMTP submission on {host}:{server.port}", err=True)
            await stop.wait()
    finally:
        await services.close()
