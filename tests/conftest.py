"""Shared fixtures: a real PostgreSQL (given, or embedded), one fresh database per test.

`MAILER_TEST_DATABASE_URL` names a server to use, e.g. the machine's own
`postgresql://postgres@127.0.0.1:5432/test`; without it, the embedded PostgreSQL is started
for the run. Never `DATABASE_URL`: that is a deployment's database, and the tests create and
drop databases. It is removed from the environment before any test runs, so that neither
the settings nor a `mailer` subprocess of a test can reach it (nor a configured Mailjet).
A template database is migrated once; each test gets a copy made by
`CREATE DATABASE ... TEMPLATE`, which takes milliseconds.
"""

from __future__ import annotations

import itertools
import os
import tempfile
import warnings
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from mailer.db.pool import connect, create_pool
from mailer.runtime import SIMULATOR_KEY, SIMULATOR_SECRET, apply_migrations
from mailer.simulator.server import SimulatorServer

warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")

# What points at a deployment's servers; a test that needs one sets it for itself.
DEPLOYMENT_VARIABLES = (
    "DATABASE_URL",
    "MAILER_DATABASE_URL",
    "MJ_APIKEY_PUBLIC",
    "MJ_APIKEY_PRIVATE",
    "MAILJET_API_URL",
)
for _variable in DEPLOYMENT_VARIABLES:
    os.environ.pop(_variable, None)


def server_url_for_tests(environ: Mapping[str, str]) -> str | None:
    """The PostgreSQL server the tests may create databases on: only the one named by
    `MAILER_TEST_DATABASE_URL` (None: start the embedded one)."""
    return environ.get("MAILER_TEST_DATABASE_URL") or None


_counter = itertools.count()

_LAYERS = ("unit", "integration", "acceptance")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with its layer, from its folder: `-m "not acceptance"` skips the real
    processes (what `python3 dev.py test --fast` runs)."""
    for item in items:
        layer = item.path.parent.name
        if layer in _LAYERS:
            item.add_marker(getattr(pytest.mark, layer))


def with_database(dsn: str, name: str) -> str:
    """The same server DSN pointing at another database."""
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


@pytest.fixture(scope="session")
def server_dsn() -> Iterator[str]:
    """A DSN for a database on the test server, with rights to create databases."""
    given = server_url_for_tests(os.environ)
    if given:
        yield given
        return
    from mailer.db.embedded import EmbeddedPostgres

    with tempfile.TemporaryDirectory(prefix="mailer-test-pg-") as tmp:
        os.chmod(tmp, 0o755)
        embedded = EmbeddedPostgres(Path(tmp), delete_on_stop=True)
        dsn = embedded.start()
        try:
            yield dsn
        finally:
            embedded.stop()


async def admin_execute(server_dsn: str, *statements: str) -> None:
    """Run statements (CREATE/DROP DATABASE) on their own connection to the test server."""
    admin = await connect(server_dsn)
    try:
        for statement in statements:
            await admin.execute(statement)
    finally:
        await admin.close()


@pytest.fixture(scope="session")
async def template_db(server_dsn: str) -> AsyncIterator[str]:
    """A migrated template database, made once per test run."""
    name = f"mailer_tpl_{os.getpid()}"
    await admin_execute(
        server_dsn, f'DROP DATABASE IF EXISTS "{name}"', f'CREATE DATABASE "{name}"'
    )
    await apply_migrations(with_database(server_dsn, name))
    yield name
    await admin_execute(server_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def db_dsn(server_dsn: str, template_db: str) -> AsyncIterator[str]:
    """A fresh, migrated database for one test."""
    name = f"mailer_t_{os.getpid()}_{next(_counter)}"
    await admin_execute(server_dsn, f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
    yield with_database(server_dsn, name)
    await admin_execute(server_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def pool(db_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    """A connection pool on the test's database."""
    p = await create_pool(db_dsn, min_size=1, max_size=10)
    yield p
    await p.close()


@pytest.fixture
async def simulator() -> AsyncIterator[SimulatorServer]:
    """A Mailjet simulator on a free loopback port, with the credentials workers use."""
    async with SimulatorServer(api_key=SIMULATOR_KEY, secret_key=SIMULATOR_SECRET) as sim:
        yield sim
