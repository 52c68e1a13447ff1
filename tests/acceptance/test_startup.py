"""Start-up failures end in one line naming the setting and the fix, and a non-zero exit:
real `mailer api`, `mailer run` and `mailer worker` processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator

import pytest

from tests.conftest import admin_execute, with_database

MAILER = [sys.executable, "-m", "mailer.cli"]


def _start(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "MAILJET_API_URL": "http://127.0.0.1:9",
        # Never the machine's own data directory (the demo's certificate, its database).
        "MAILER_DATA_DIR": tempfile.mkdtemp(prefix="mailer-startup-"),
        **env,
    }
    return subprocess.run(
        [*MAILER, *args], env=environment, capture_output=True, text=True, timeout=60
    )


def _one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode != 0, done
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("Error: "), lines
    return lines[0]


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


@pytest.mark.parametrize("command", ["api", "run"])
def test_a_busy_port_names_mailer_port(command: str, busy_port: int, db_dsn: str) -> None:
    line = _one_error_line(_start([command, "--port", str(busy_port)], DATABASE_URL=db_dsn))
    assert f"127.0.0.1:{busy_port}" in line
    assert "MAILER_PORT" in line and "in use" in line


@pytest.mark.parametrize("command", ["api", "worker", "run"])
def test_an_unreachable_database_names_database_url(command: str) -> None:
    with socket.socket() as probe:  # a port where nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql://mailer:s3cret@127.0.0.1:{port}/mailer"
    line = _one_error_line(
        _start([command, "--port", "0"] if command != "worker" else [command], DATABASE_URL=url)
    )
    assert "DATABASE_URL" in line and f"127.0.0.1:{port}/mailer" in line
    assert "s3cret" not in line  # never the password


@pytest.mark.parametrize("command", ["api", "worker"])
async def test_a_missing_migration_names_mailer_migrate(command: str, server_dsn: str) -> None:
    name = f"mailer_unmigrated_{os.getpid()}"
    await admin_execute(server_dsn, f'CREATE DATABASE "{name}"')
    try:
        args = [command, "--port", "0"] if command == "api" else [command]
        done = _start(args, DATABASE_URL=with_database(server_dsn, name))
    finally:
        await admin_execute(server_dsn, f'DROP DATABASE "{name}" WITH (FORCE)')
    line = _one_error_line(done)
    assert "DATABASE_URL" in line and "mailer migrate" in line and "0006_worker_heartbeats" in line
