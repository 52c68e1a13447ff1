"""Assembling the processes: the database (given or embedded), Mailjet (real or simulated),
and the worker with everything it needs."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import asyncpg
import orjson

from mailer.config import DEFAULT_MAILJET_URL, ConfigError, Settings, safe_dsn
from mailer.db import migrate
from mailer.db.embedded import EmbeddedPostgres
from mailer.db.housekeeping import Housekeeping
from mailer.db.pool import connect, use_statement_cache
from mailer.delivery.pacing import MailjetPace
from mailer.delivery.retry import RetryPolicy
from mailer.delivery.send import Sender
from mailer.delivery.worker import JOBS_CHANNEL, Worker
from mailer.lifecycle import address_key
from mailer.lifecycle.retention import Periods, Retention
from mailer.logs import describe
from mailer.mailjet import ClientTimeouts, MailjetClient, registration
from mailer.ops.event_clock import SilenceWatch
from mailer.ops.heartbeat import Heartbeat
from mailer.queue.loop import claiming_ahead
from mailer.queue.wakeup import Wakeup
from mailer.stats.rollups import Folder
from mailer.tracking.doctor import Ours
from mailer.vault import box_for
from mailer.webhooks import sealed
from mailer.webhooks.dispatch import Dispatcher
from mailer.webhooks.outbox import CHANNEL as WEBHOOK_CHANNEL
from mailer.webhooks.targets import TargetPolicy

log = logging.getLogger(__name__)

# Credentials the simulator accepts when none are configured (it only listens on loopback).
SIMULATOR_KEY = "simulator-public"
SIMULATOR_SECRET = "simulator-private"
# Where `mailer run` starts its built-in simulator (a random port if this one is taken).
DEMO_SIMULATOR_PORT = 8025
# Beside the embedded database: where a running `mailer run` says which simulator it uses.
DEMO_STATE_FILE = "demo-mailjet.json"


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
    """The Mailjet of the settings; without keys, a simulator at MAILJET_API_URL, else the
    built-in simulator of a `mailer run` running with the same data directory."""
    if settings.mj_apikey_public is not None and settings.mj_apikey_private is not None:
        return MailjetTarget(
            settings.mailjet_api_url,
            settings.mj_apikey_public,
            settings.mj_apikey_private.get_secret_value(),
        )
    if settings.mailjet_api_url != DEFAULT_MAILJET_URL:
        return MailjetTarget(settings.mailjet_api_url, SIMULATOR_KEY, SIMULATOR_SECRET)
    demo = read_demo_state(settings.data_dir)
    if demo is None:
        raise RuntimeError(
            "no Mailjet keys: set MJ_APIKEY_PUBLIC and MJ_APIKEY_PRIVATE, point "
            "MAILJET_API_URL at a `mailer simulator`, or start `mailer run` (it has one built in)"
        )
    return demo.target


def our_callback(settings: Settings, public_url: str | None = None) -> Ours:
    """What Mailer's event callback at Mailjet looks like, for the doctor's checks
    (`mailer mailjet doctor`, the dashboard's Mailjet page): the URL a running demo
    registered; else `public_url` (Mailer's `/events` as Mailjet reaches it) with the event
    credentials; else only the credentials (a callback carrying them counts as ours).

    Raises:
        ValueError: `public_url` is not a URL a callback can have.
    """
    user = settings.events_user
    password = settings.events_password.get_secret_value() if settings.events_password else None
    demo = read_demo_state(settings.data_dir) if settings.uses_simulator else None
    if demo is not None and public_url is None and user is None:
        parts = urlsplit(demo.events_url)
        return Ours(demo.events_url, unquote(parts.username or ""), unquote(parts.password or ""))
    if public_url is None or user is None or password is None:
        return Ours(None, user, password)
    return Ours(registration.webhook_url(public_url, user, password), user, password)


@dataclass(frozen=True)
class DemoState:
    """What a running `mailer run` tells the other `mailer` commands about its demo: the
    built-in simulator it sends to, and the `/events` URL (with the run's credentials) it
    registered there."""

    target: MailjetTarget
    events_url: str
    pid: int


def demo_state_path(data_dir: Path) -> Path:
    """The demo's state file, beside the embedded database."""
    return data_dir / DEMO_STATE_FILE


def write_demo_state(data_dir: Path, target: MailjetTarget, events_url: str) -> Path:
    """Record the demo's simulator and `/events` URL for the other commands (owner-only:
    the URL carries the run's event credentials); return the file's path."""
    path = demo_state_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "mailjet_api_url": target.url,
        "api_key": target.api_key,
        "secret_key": target.secret_key,
        "events_url": events_url,
        "pid": os.getpid(),
    }
    temporary = path.with_suffix(".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(orjson.dumps(state))
    temporary.replace(path)
    return path


def remove_demo_state(data_dir: Path) -> None:
    """Remove the state file if this process wrote it (another run may have taken over)."""
    state = read_demo_state(data_dir)
    if state is not None and state.pid == os.getpid():
        demo_state_path(data_dir).unlink(missing_ok=True)


def read_demo_state(data_dir: Path) -> DemoState | None:
    """The state of a `mailer run` demo that is still running, else None (no file, an
    unreadable one, or one left by a process that is gone)."""
    try:
        data = orjson.loads(demo_state_path(data_dir).read_bytes())
        state = DemoState(
            MailjetTarget(
                str(data["mailjet_api_url"]), str(data["api_key"]), str(data["secret_key"])
            ),
            str(data["events_url"]),
            int(data["pid"]),
        )
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None
    return state if _process_alive(state.pid) else None


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


@contextlib.contextmanager
def database(settings: Settings) -> Iterator[str]:
    """The DSN to use: DATABASE_URL, or the embedded server started for the duration.

    Every command passes here first: its connections follow MAILER_STATEMENT_CACHE_SIZE."""
    use_statement_cache(settings.statement_cache_size)
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


async def _warn_if_jit_on(conn: asyncpg.Connection, where: str) -> None:
    """Mailer asks for `jit = off` when it connects; a pooler that drops the start-up
    parameter (PgBouncer's ignore_startup_parameters) leaves JIT on, which costs ~100 ms on
    a claim whose estimated cost crosses jit_above_cost."""
    if await conn.fetchval("SHOW jit") == "on":
        log.warning(
            "JIT is on for Mailer's connections (a connection pooler dropped jit=off?): "
            "ALTER DATABASE … SET jit = off",
            extra={"action": "jit_on", "database": where},
        )


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
    except asyncpg.ProtocolViolationError as exc:
        if "startup parameter" not in str(exc):
            raise StartupError(f"DATABASE_URL: {where}: {describe(exc)}") from None
        raise StartupError(
            f"DATABASE_URL: the connection pooler at {where} refused a start-up parameter "
            f"({describe(exc)}): add `jit` to PgBouncer's ignore_startup_parameters and run "
            "ALTER DATABASE … SET jit = off (docs/deployment.md, PgBouncer)"
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
        await _warn_if_jit_on(conn, where)
        if migrations:
            await migrate.check(conn)
    except migrate.PendingMigrations as exc:
        raise StartupError(
            f"DATABASE_URL: {exc} with the same DATABASE_URL ({where}), then start again"
        ) from None
    finally:
        await conn.close()


async def check_secrets(settings: Settings, dsn: str) -> None:
    """Raise `StartupError` when webhook secrets exist but no MAILER_SECRET_KEY can open
    them (or the key is malformed); with a key, seal any secret still stored in clear."""
    try:
        box = box_for(settings)
    except ConfigError as exc:
        raise StartupError(str(exc)) from None
    conn = await connect(dsn)
    try:
        if box is None:
            endpoints = await sealed.count_endpoints(conn)
            erased = await address_key.erased_count(conn)
            if endpoints or erased:
                raise StartupError(
                    f"MAILER_SECRET_KEY: must be set: {endpoints} webhook endpoint(s) and "
                    f"{erased} erased suppression(s) depend on it (make a key with `mailer "
                    "secrets generate-key` only if none was ever set)"
                )
            return
        changed = await sealed.seal_clear_secrets(conn, box)
        if changed:
            log.info(
                "sealed webhook secrets stored in clear",
                extra={"action": "secrets_sealed", "endpoints": changed},
            )
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
    box = box_for(settings)
    pads = None
    if box is not None:
        async with pool.acquire() as conn:
            pads = (await address_key.address_key(conn, box)).pads()
    # One LISTEN connection wakes both of the process's queues; LISTEN needs a connection
    # that keeps its session, which PgBouncer's transaction mode does not give.
    wakeup = Wakeup(settings.listen_database_url or dsn, (JOBS_CHANNEL, WEBHOOK_CHANNEL))
    await wakeup.start()
    worker = Worker(
        pool,
        Sender(client, policy or RetryPolicy(), lookup_grace=settings.lookup_grace_seconds),
        wakeup.signal(JOBS_CHANNEL),
        claiming_ahead(
            settings.worker_concurrency,
            lease_seconds=settings.lease_seconds,
            poll_interval=settings.poll_interval,
        ),
        claim_batch=settings.claim_batch,
        erased_key_pads=pads,
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
    dispatcher = Dispatcher(
        pool,
        wakeup.signal(WEBHOOK_CHANNEL),
        targets=TargetPolicy(settings.webhook_networks),
        box=box,
    )
    await dispatcher.start()
    housekeeping = Housekeeping(pool)
    # Notes when Mailjet accepts sends, and says so when no `sent` events follow.
    silence = SilenceWatch(pool, after=settings.event_silence_after)
    retention = Retention(
        pool,
        Periods.from_settings(settings),
        interval=settings.retention_interval_seconds,
    )
    folder = Folder(pool)
    try:
        await heartbeat.start()
        await housekeeping.start()
        await silence.start()
        await retention.start()
        await folder.start()
        yield worker
    finally:
        await folder.stop()
        try:
            await worker.stop()
            await client.aclose()
        finally:
            await silence.stop()
            await heartbeat.stop()
            await housekeeping.stop()
            await retention.stop()
            await dispatcher.stop()
            await wakeup.stop()
