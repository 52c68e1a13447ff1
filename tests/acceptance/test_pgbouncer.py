"""Mailer behind PgBouncer (Debian's `pgbouncer`, in front of the test PostgreSQL).

Session mode works with Mailer's defaults: asyncpg's named prepared statements, the
worker's LISTEN, `mailer migrate`. Transaction mode needs two settings: no named prepared
statements (MAILER_STATEMENT_CACHE_SIZE=0, for PgBouncer before 1.21) and a LISTEN
connection that keeps its session (MAILER_LISTEN_DATABASE_URL, here a second database
entry of the same PgBouncer in session mode). Each test starts its own pgbouncer on a free
loopback port with its own ini; without the binary the tests are skipped.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import asyncpg
import orjson
import pytest

from mailer.simulator.server import SimulatorServer
from tests.conftest import admin_execute, with_database

pytestmark = pytest.mark.slow

MAILER = [sys.executable, "-m", "mailer.cli"]
PGBOUNCER = shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin")
EMAILS = 200
POLL_SECONDS = 30  # far longer than the test waits: only a NOTIFY can wake the worker


def pgbouncer_version() -> tuple[int, ...]:
    assert PGBOUNCER is not None
    first = subprocess.run([PGBOUNCER, "--version"], capture_output=True, text=True).stdout
    found = re.search(r"(\d+)\.(\d+)", first)
    assert found is not None, first
    return tuple(int(part) for part in found.groups())


@pytest.fixture(autouse=True)
def _needs_pgbouncer() -> None:
    if PGBOUNCER is None:
        pytest.skip("pgbouncer is not installed (Debian: apt-get install pgbouncer)")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@dataclass(frozen=True)
class Bouncer:
    """A running pgbouncer: `database` in the ini's pool mode, `database`_session in session
    mode, both on the same server database."""

    port: int
    database: str
    log: Path

    def url(self, *, session: bool = False) -> str:
        name = f"{self.database}_session" if session else self.database
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"


def _socket_dir(server_dsn: str) -> str | None:
    """The Unix socket directory of the server DSN (the embedded PostgreSQL's), if any."""
    return parse_qs(urlsplit(server_dsn).query).get("host", [None])[0]


def server_entry(server_dsn: str, database: str) -> str:
    """A [databases] connection string for `database` on the test server (TCP or a Unix
    socket directory, as the server DSN says)."""
    parts = urlsplit(server_dsn)
    socket_dir = _socket_dir(server_dsn)
    fields = {
        "host": parts.hostname or socket_dir or "/var/run/postgresql",
        "port": str(parts.port or 5432),
        "dbname": database,
        "user": parts.username or "postgres",
    }
    if parts.password:
        fields["password"] = parts.password
    return " ".join(f"{key}={value}" for key, value in fields.items())


def _unprivileged_user(server_dsn: str) -> str:
    """Who pgbouncer runs as under root (it refuses root): the owner of the server's socket
    directory, which only it may enter; else nobody."""
    socket_dir = _socket_dir(server_dsn)
    if socket_dir is None:
        return "nobody"
    return pwd.getpwuid(os.stat(socket_dir).st_uid).pw_name


@contextmanager
def pgbouncer(
    server_dsn: str, database: str, pool_mode: str, *, ignore_jit: bool = True
) -> Iterator[Bouncer]:
    """A pgbouncer of the test's own in front of `database`, stopped on the way out."""
    assert PGBOUNCER is not None
    workdir = Path(tempfile.mkdtemp(prefix="mailer-pgbouncer-"))
    workdir.chmod(0o755)  # as root it runs as another user, which must read its files
    port = _free_port()
    entry = server_entry(server_dsn, database)
    (workdir / "users.txt").write_text('"postgres" ""\n')
    (workdir / "pgbouncer.ini").write_text(
        f"""[databases]
{database} = {entry} pool_mode={pool_mode}
{database}_session = {entry} pool_mode=session

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {workdir / "users.txt"}
ignore_startup_parameters = {"jit" if ignore_jit else ""}
max_client_conn = 200
default_pool_size = 20
server_connect_timeout = 5
query_wait_timeout = 10
"""
    )
    for path in workdir.iterdir():
        path.chmod(0o644)
    log = workdir / "pgbouncer.log"
    as_user = ["-u", _unprivileged_user(server_dsn)] if os.geteuid() == 0 else []
    with log.open("wb") as out:
        process = subprocess.Popen(
            [PGBOUNCER, *as_user, str(workdir / "pgbouncer.ini")], stdout=out, stderr=out
        )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "pgbouncer did not listen"
                time.sleep(0.05)
        yield Bouncer(port, database, log)
    finally:
        process.send_signal(signal.SIGINT)  # SIGINT: safe shutdown, at once
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
async def empty_db(server_dsn: str) -> AsyncIterator[str]:
    """A new database, not migrated: `mailer migrate` runs through PgBouncer."""
    name = f"mailer_bouncer_{os.getpid()}_{time.monotonic_ns() % 10**9}"
    await admin_execute(server_dsn, f'CREATE DATABASE "{name}"')
    yield name
    await admin_execute(server_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Processes:
    """`mailer` processes with one environment; their output goes to one log file."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.running: list[subprocess.Popen[bytes]] = []

    def run(self, *args: str) -> str:
        done = subprocess.run(
            [*MAILER, *args], env=self.env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        with self.log.open("a") as out:
            out.write(done.stderr)
        return done.stdout

    def start(self, *args: str) -> None:
        with self.log.open("ab") as out:
            self.running.append(
                subprocess.Popen(
                    [*MAILER, *args], env=self.env, stdin=subprocess.DEVNULL, stdout=out,
                    stderr=out,
                )
            )  # fmt: skip

    def stop(self) -> None:
        for process in self.running:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.running:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def send_through(url: str, key: str, processes: Processes) -> list[str]:
    """Once the API at `url` sees the worker: queue EMAILS emails; their job ids."""
    headers = {"Authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
        deadline = time.monotonic() + 30
        while True:
            try:
                async with session.get(f"{url}/readyz") as response:
                    if response.status == 200 and (await response.json())["live_workers"]:
                        break
            except aiohttp.ClientError:
                pass
            assert time.monotonic() < deadline, processes.log.read_text()
            await asyncio.sleep(0.1)
        emails = [
            {"from": {"email": "noreply@shop.example"}, "to": [{"email": f"u{i}@example.org"}],
             "subject": "Hello", "text": "Hi"}
            for i in range(EMAILS)
        ]  # fmt: skip
        async with session.post(
            f"{url}/queue/batch", json={"emails": emails}, headers=headers
        ) as response:
            assert response.status == 202, await response.text()
            return [job["job_id"] for job in (await response.json())["jobs"]]


async def wait_listening(dsn: str) -> None:
    """Until a server connection of the database has run LISTEN (the worker's, through
    PgBouncer): from then on an enqueue's NOTIFY is the worker's only wake-up."""
    conn = await asyncpg.connect(dsn)
    try:
        deadline = time.monotonic() + 30
        query = (
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND query ILIKE 'LISTEN%'"
        )
        while not await conn.fetchval(query):
            assert time.monotonic() < deadline, "the worker never listened"
            await asyncio.sleep(0.1)
    finally:
        await conn.close()


async def wait_until_sent(dsn: str, count: int, seconds: float) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        deadline = time.monotonic() + seconds
        while await conn.fetchval("SELECT count(*) FROM jobs WHERE state = 'done'") < count:
            assert time.monotonic() < deadline, "not sent: no NOTIFY reached the worker?"
            await asyncio.sleep(0.1)
    finally:
        await conn.close()


@pytest.mark.parametrize("pool_mode", ["session", "transaction"])
async def test_mailer_works_behind_pgbouncer(
    pool_mode: str,
    server_dsn: str,
    empty_db: str,
    simulator: SimulatorServer,
    tmp_path: Path,
) -> None:
    direct = with_database(server_dsn, empty_db)
    with pgbouncer(server_dsn, empty_db, pool_mode) as bouncer:
        env = {
            **os.environ,
            "DATABASE_URL": bouncer.url(),
            "MAILJET_API_URL": simulator.url,
            "MAILER_POLL_INTERVAL": str(POLL_SECONDS),
            "MAILER_LOG_LEVEL": "warning",
        }
        if pool_mode == "transaction":
            env["MAILER_STATEMENT_CACHE_SIZE"] = "0"
            env["MAILER_LISTEN_DATABASE_URL"] = bouncer.url(session=True)
            # PgBouncer drops Mailer's jit=off start-up parameter; this is the remedy.
            await admin_execute(direct, f'ALTER DATABASE "{empty_db}" SET jit = off')
        mailer = Processes(env, tmp_path / "mailer.log")
        try:
            assert "applied" in mailer.run("migrate")
            key = orjson.loads(mailer.run("apps", "create", "shop", "--json"))["api_key"]
            api_port = _free_port()
            mailer.start("api", "--port", str(api_port))
            mailer.start("worker")
            await wait_listening(direct)
            job_ids = await send_through(f"http://127.0.0.1:{api_port}", key, mailer)
            await wait_until_sent(direct, EMAILS, seconds=POLL_SECONDS / 2)
        finally:
            mailer.stop()
        bouncer_log = bouncer.log.read_text()
    assert sorted(m.custom_id for m in simulator.state.accepted) == sorted(job_ids)
    log = mailer.log.read_text()
    assert "Traceback" not in log, log
    assert f"db={empty_db} " in bouncer_log or f"db={empty_db}\n" in bouncer_log
    if pool_mode == "session":
        assert "action=jit_on" in log  # the warning that says what to do
    else:
        assert "action=jit_on" not in log
        assert f"db={empty_db}_session" in bouncer_log  # the worker's LISTEN went there


async def test_transaction_mode_breaks_named_statements_and_listen(
    server_dsn: str, db_dsn: str
) -> None:
    """Why the two settings exist: with asyncpg's defaults, named prepared statements meet
    other server connections (before PgBouncer 1.21), and LISTEN hears nothing."""
    database = urlsplit(db_dsn).path.lstrip("/")
    with pgbouncer(server_dsn, database, "transaction") as bouncer:
        pool = await asyncpg.create_pool(bouncer.url(), min_size=4, max_size=4)
        assert pool is not None
        try:

            async def query(i: int) -> object:
                async with pool.acquire() as conn:
                    return await conn.fetchval("SELECT count(*) FROM jobs WHERE attempts > $1", i)

            outcomes = await asyncio.gather(*(query(i) for i in range(200)), return_exceptions=True)
            heard: list[str] = []
            listener = await asyncpg.connect(bouncer.url())
            await listener.add_listener("mailer_jobs", lambda *args: heard.append(args[3]))
            for _ in range(5):
                await pool.execute("SELECT pg_notify('mailer_jobs', 'x')")
            await asyncio.sleep(0.5)
            await listener.close()
        finally:
            await pool.close()
    failures = [o for o in outcomes if isinstance(o, asyncpg.InvalidSQLStatementNameError)]
    if pgbouncer_version() < (1, 21):
        assert failures, "named prepared statements worked through transaction pooling"
    assert heard == []


def test_a_pgbouncer_that_refuses_jit_is_named_with_the_fix(server_dsn: str, db_dsn: str) -> None:
    database = urlsplit(db_dsn).path.lstrip("/")
    with pgbouncer(server_dsn, database, "session", ignore_jit=False) as bouncer:
        done = subprocess.run(
            [*MAILER, "worker"],
            env={
                **os.environ,
                "DATABASE_URL": bouncer.url(),
                "MAILJET_API_URL": "http://127.0.0.1:9",
            },
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "DATABASE_URL" in lines[0] and "ignore_startup_parameters" in lines[0]
