"""Setting up: migrations, the embedded PostgreSQL, the CLI's app and key commands."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import orjson

from mailer.db import migrate
from mailer.db.pool import connect
from mailer.runtime import apply_migrations, check_migrations
from tests.conftest import admin_execute, with_database


async def test_migrations_from_empty_and_again(server_dsn: str) -> None:
    name = f"mailer_migrate_{os.getpid()}"
    await admin_execute(
        server_dsn, f'DROP DATABASE IF EXISTS "{name}"', f'CREATE DATABASE "{name}"'
    )
    dsn = with_database(server_dsn, name)
    try:
        conn = await connect(dsn)
        try:
            try:
                await migrate.check(conn)
                raise AssertionError("an empty database must need migrations")
            except migrate.PendingMigrations as exc:
                assert "mailer migrate" in str(exc)
        finally:
            await conn.close()
        first = await apply_migrations(dsn)
        assert first == [f"{m.version:04d}_{m.name}" for m in migrate.available_migrations()]
        assert await apply_migrations(dsn) == []
        await check_migrations(dsn)
    finally:
        await admin_execute(server_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def test_concurrent_migrations_apply_each_one_once(server_dsn: str) -> None:
    name = f"mailer_migrate_together_{os.getpid()}"
    await admin_execute(
        server_dsn, f'DROP DATABASE IF EXISTS "{name}"', f'CREATE DATABASE "{name}"'
    )
    try:
        runs = await asyncio.gather(
            *(apply_migrations(with_database(server_dsn, name)) for _ in range(3))
        )
        every = [f"{m.version:04d}_{m.name}" for m in migrate.available_migrations()]
        assert sorted(n for run in runs for n in run) == every
    finally:
        await admin_execute(server_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def test_embedded_postgres_starts_keeps_data_and_stops() -> None:
    from mailer.db.embedded import EmbeddedPostgres

    with tempfile.TemporaryDirectory(prefix="mailer-embedded-") as tmp:
        os.chmod(tmp, 0o755)
        embedded = EmbeddedPostgres(Path(tmp))
        dsn = embedded.start()
        await apply_migrations(dsn)
        conn = await connect(dsn)
        await conn.execute("INSERT INTO apps (id, name) VALUES (gen_random_uuid(), 'kept')")
        await conn.close()
        embedded.stop()
        # Started again on the same directory, the data is still there.
        again = EmbeddedPostgres(Path(tmp), delete_on_stop=True)
        dsn = again.start()
        conn = await connect(dsn)
        try:
            assert await conn.fetchval("SELECT name FROM apps") == "kept"
        finally:
            await conn.close()
            again.stop()


def test_cli_apps_and_keys(db_dsn: str) -> None:
    env = {**os.environ, "DATABASE_URL": db_dsn}

    def mailer(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "mailer.cli", *args],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    created = orjson.loads(mailer("apps", "create", "shop", "--json"))
    assert created["api_key"].startswith("mk_")
    assert "shop" in mailer("apps", "list")
    second = orjson.loads(mailer("apps", "keys", "create", "shop", "--json"))
    listing = mailer("apps", "keys", "list", "shop")
    assert created["api_key"] not in listing  # secrets are never shown again
    prefix = second["api_key"].split("_")[1]
    assert prefix in listing
    assert "revoked" in mailer("apps", "keys", "revoke", prefix)
    refused = subprocess.run(
        [sys.executable, "-m", "mailer.cli", "apps", "create", "shop"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert refused.returncode != 0 and "exists already" in refused.stderr


def test_bad_configuration_is_refused_with_a_clear_message() -> None:
    env = {**os.environ, "MAILER_PORT": "http", "MJ_APIKEY_PUBLIC": "only-one"}
    done = subprocess.run(
        [sys.executable, "-m", "mailer.cli", "worker"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0
    assert "MAILER_PORT" in done.stderr
    assert "Traceback" not in done.stderr


def test_run_stops_its_embedded_postgres_on_sigterm() -> None:
    import signal
    import socket
    import time

    with tempfile.TemporaryDirectory(prefix="mailer-run-") as tmp:
        os.chmod(tmp, 0o755)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        env = {
            **os.environ,
            "MAILER_DATA_DIR": tmp,
            "MAILER_PORT": str(port),
            "MAILER_LOG_LEVEL": "warning",
        }
        for name in ("DATABASE_URL", "MJ_APIKEY_PUBLIC", "MJ_APIKEY_PRIVATE"):
            env.pop(name, None)
        proc = subprocess.Popen(
            [sys.executable, "-m", "mailer.cli", "run"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        pid_file = Path(tmp) / "pgdata" / "postmaster.pid"
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                assert proc.poll() is None, proc.communicate()[1]
                assert time.monotonic() < deadline, "mailer run did not start listening"
                time.sleep(0.1)
        assert pid_file.exists()
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
        assert proc.returncode == 0, stderr
        # The last Mailer process out stops the embedded server.
        assert not pid_file.exists()
