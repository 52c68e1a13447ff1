"""Assembling the processes: the database (given or embedded), Mailjet (real or simulated),
and the worker with everything it needs."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import asyncpg

from mailer.config import DEFAULT_MAILJET_URL, Settings, safe_dsn
from mailer.db import migrate
from mailer.db.embedded import EmbeddedPostgres
from mailer.db.housekeeping import Housekeeping
from mailer.db.pool import connect
from mailer.delivery.pacing import MailjetPace
from mailer.delivery.retry import RetryPolicy
from mailer.delivery.send import Sender
from mailer.delivery.worker import JOBS_CHANNEL, Worker
from mailer.logs import describe
from mailer.mailjet import ClientTimeouts, MailjetClient
from mailer.ops.heartbeat import Heartbeat
from mailer.queue.loop import claiming_ahead
from mailer.queue.wakeup import Wakeup
from mailer.stats.rollups import Folder
from mailer.webhooks.dispatch import Dispatcher
from mailer.webhooks.outbox import CHANNEL as WEBHOOK_CHANNEL

log = logging.getLogger(__name__)

# Credentials the simulator accepts when none are configured (it only listens on loopback).
SIMULATOR_KEY = "simulator-public"
SIMULATOR_SECRET = "simulator-private"


@dataclass(frozen=True)
class MailjetTarget:
    """Where and as whom to call the Send API."""

    url: str
    api_key: str
    secret_key: str


async def register_events_with_simulator(
    settings: Settings, target: MailjetTarget, host: str, port: int
) -> str:
    """Register the `/events` of an API on `host:port` (loopback, with the event credentials
    of `settings`) for every event type with the simulator at `target`; return the URL.

    Idempotent. Raises MailjetError, or ValueError when `settings` has no event credentials.
    """
    from mailer.mailjet.registration import local_events_url, register

    user, password = settings.events_user, settings.events_password
    if user is None or password is None:
        raise ValueError("no event credentials: see mailer.tracking.credentials")
    url = local_events_url(host, port, user, password.get_secret_value())
    async with MailjetClient(target.url, target.api_key, target.secret_key) as client:
        await register(client, url)
    return url


def configured_mailjet(settings: Settings) -> MailjetTarget:
    """The Mailjet of the settings; without keys, a simulator at MAILJET_API_URL."""
    if settings.mj_apikey_public is not None and settings.mj_apikey_private is not None:
        return MailjetTarget(
            settings.mailjet_api_url,
            settings.mj_apikey_public,
            settings.mj_apikey_private.get_secret_value(),
        )
    if settings.mailjet_api_url == DEFAULT_MAILJET_URL:
        raise RuntimeError(
            "no Mailjet keys: set MJ_APIKEY_PUBLIC and MJ_APIKEY_PRIVATE, or point "
            "MAILJET_API_URL at a `mailer simulator`"
        )
    return MailjetTarget(settings.mailjet_api_url, SIMULATOR_KEY, SIMULATOR_SECRET)


@contextlib.contextmanager
def database(settings: Settings) -> Iterator[str]:
    """The DSN to use: DATABASE_URL, or the embedded server started for the duration."""
    if settings.database_url is not None:
        yield settings.database_url
        return
    embedded = EmbeddedPostgres(settings.data_dir)
    log.info(
        "no DATABASE_URL: using the embedded PostgreSQL",
        extra={"action": "embedded_pg", "data_dir": str(settings.data_dir)},
    )
    dsn = embedded.start()
    try:
        yield dsn
    finally:
        embedded.stop()


async def apply_migrations(dsn: str) -> list[str]:
    """Bring the schema up to date; return the names of the migrations applied."""
    conn = await connect(dsn)
    try:
        applied = await migrate.migrate(conn)
    finally:
        await conn.close()
    return [f"{m.version:04d}_{m.name}" for m in applied]


async def check_migrations(dsn: str) -> None:
    """Refuse to start against a database that lacks migrations."""
    conn = await connect(dsn)
    try:
        await migrate.check(conn)
    finally:
        await conn.close()


class StartupError(Exception):
    """The process cannot start; the message is one line naming the setting and the fix."""


def check_port(host: str, port: int) -> None:
    """Raise `StartupError` unless `host:port` can be listened on (checked before anything
    else starts, so a busy port costs nothing and says which setting to change)."""
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((host, port))
        except OSError as exc:
            reason = exc.strerror or describe(exc)
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                raise StartupError(
                    f"MAILER_PORT: cannot listen on {host}:{port} ({reason}): stop what uses "
                    "the port, or set MAILER_PORT (or --port) to a free one"
                ) from None
            raise StartupError(
                f"MAILER_HOST: cannot listen on {host}:{port} ({reason}): set MAILER_HOST "
                "(or --host) to an address of this machine, e.g. 127.0.0.1 or 0.0.0.0"
            ) from None


async def check_database(dsn: str, *, migrations: bool = True, timeout: float = 10.0) -> None:
    """Raise `StartupError` unless the database answers within `timeout` seconds (and, with
    `migrations`, has every migration applied)."""
    where = safe_dsn(dsn)
    try:
        conn = await asyncio.wait_for(connect(dsn), timeout)
    except TimeoutError:
        raise StartupError(
            f"DATABASE_URL: PostgreSQL at {where} did not answer within {timeout:.0f} s: "
            "check the host, the port and the firewall, or set DATABASE_URL to a reachable server"
        ) from None
    except asyncpg.InvalidCatalogNameError as exc:
        raise StartupError(
            f"DATABASE_URL: {exc} (on {where}): create it (createdb), or fix the database "
            "name in DATABASE_URL"
        ) from None
    except asyncpg.InvalidAuthorizationSpecificationError as exc:
        raise StartupError(
            f"DATABASE_URL: PostgreSQL at {where} refused the login ({describe(exc)}): fix the "
            "user name or password in DATABASE_URL"
        ) from None
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise StartupError(
            f"DATABASE_URL: cannot connect to PostgreSQL at {where} ({describe(exc)}): start "
            "it, or set DATABASE_URL to a reachable server"
        ) from None
    try:
        if migrations:
            await migrate.check(conn)
    except migrate.PendingMigrations as exc:
        raise StartupError(
            f"DATABASE_URL: {exc} with the same DATABASE_URL ({where}), then start again"
        ) from None
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def running_worker(
    settings: Settings,
    dsn: str,
    pool: asyncpg.Pool,
    target: MailjetTarget,
    *,
    policy: RetryPolicy | None = None,
) -> AsyncIterator[Worker]:
    """A started worker; on exit it drains and everything it opened is closed."""
    client = MailjetClient(
        target.url,
        target.api_key,
        target.secret_key,
        timeout=ClientTimeouts(total=settings.mailjet_timeout),
    )
    # One LISTEN connection wakes both of the process's queues.
    wakeup = Wakeup(dsn, (JOBS_CHANNEL, WEBHOOK_CHANNEL))
    await wakeup.start()
    worker = Worker(
        pool,
        Sender(client, policy or RetryPolicy()),
        wakeup.signal(JOBS_CHANNEL),
        claiming_ahead(
            settings.worker_concurrency,
            lease_seconds=settings.lease_seconds,
            poll_interval=settings.poll_interval,
        ),
        claim_batch=settings.claim_batch,
        mailjet_pace=(
            None
            if settings.mailjet_max_calls_per_second is None
            else MailjetPace(pool, settings.mailjet_max_calls_per_second)
        ),
    )
    await worker.start()
    # Seen by the others (`/readyz`, `mailer status`) until it has drained.
    heartbeat = Heartbeat(pool, worker.worker_id)
    # Outbound webhooks are delivered by the same process, woken on their own channel.
    dispatcher = Dispatcher(pool, wakeup.signal(WEBHOOK_CHANNEL))
    await dispatcher.start()
    housekeeping = Housekeeping(pool)
    folder = Folder(pool)
    try:
        await heartbeat.start()
        await housekeeping.start()
        await folder.start()
        yield worker
    finally:
        await folder.stop()
        try:
            await worker.stop()
            await client.aclose()
        finally:
            await heartbeat.stop()
            await housekeeping.stop()
            await dispatcher.stop()
            await wakeup.stop()
