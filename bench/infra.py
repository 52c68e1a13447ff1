"""What the scenarios stand on: fresh databases, child processes on 127.0.0.1, their memory.

Every service runs as its own OS process, started the way an operator starts it
(`python -m mailer.cli api --workers 2`, `... worker`, `... simulator`), so the numbers
include real process boundaries and nothing shares the harness's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg

from mailer.apps import store
from mailer.db.pool import connect
from mailer.runtime import apply_migrations

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SERVER_DSN = "postgresql://postgres@127.0.0.1:5432/test"
_counter = itertools.count()


def server_dsn() -> str:
    """The PostgreSQL server to create bench databases on."""
    return (
        os.environ.get("MAILER_BENCH_DATABASE_URL")
        or os.environ.get("DATABASE_URL")
        or DEFAULT_SERVER_DSN
    )


def with_database(dsn: str, name: str) -> str:
    """The same server DSN pointing at another database (query string kept)."""
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


@contextlib.asynccontextmanager
async def fresh_database(server: str, *, migrate: bool = True) -> AsyncIterator[str]:
    """A new database on `server` (migrated unless told not to), dropped afterwards."""
    name = f"mailer_bench_{os.getpid()}_{next(_counter)}"
    admin = await connect(server)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    dsn = with_database(server, name)
    try:
        if migrate:
            await apply_migrations(dsn)
        yield dsn
    finally:
        admin = await connect(server)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def create_app(dsn: str, name: str = "bench") -> tuple[uuid.UUID, str]:
    """Create an app; return its id and API key."""
    conn = await connect(dsn)
    try:
        app, key = await store.create_app(conn, name)
    finally:
        await conn.close()
    return app.id, key


async def fetchval(dsn: str, query: str, *args: object) -> Any:
    """One value from a short-lived connection."""
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(query, *args)
    finally:
        await conn.close()


async def pg_version(server: str) -> str:
    """The server's version string, short."""
    conn = await asyncpg.connect(server)
    try:
        version: str = await conn.fetchval("SHOW server_version")
    finally:
        await conn.close()
    return version


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def child_pids(pid: int) -> list[int]:
    """A process's descendants (uvicorn's worker processes, for instance)."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            text = Path(f"/proc/{pid}/task/{task}/children").read_text()
        except OSError:
            continue
        for child in text.split():
            found.append(int(child))
            found += child_pids(int(child))
    return found


def rss_bytes(pid: int) -> int:
    """Resident memory of one process (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class Proc:
    """A child process with its output in a log file; stopped with SIGTERM, then SIGKILL."""

    def __init__(self, name: str, argv: Sequence[str], env: Mapping[str, str], logs: Path) -> None:
        self.name = name
        self.port = 0  # where it listens, for servers
        logs.mkdir(parents=True, exist_ok=True)
        self.log_path = logs / f"{name}-{next(_counter)}.log"
        full_env = {**os.environ, "PYTHONPATH": str(ROOT), **env}
        with self.log_path.open("wb") as log:
            self.popen = subprocess.Popen(
                list(argv),
                env=full_env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        """The main process's id."""
        return self.popen.pid

    def rss(self) -> int:
        """Resident memory of the process and its children."""
        return sum(rss_bytes(p) for p in [self.pid, *child_pids(self.pid)])

    def tail(self, lines: int = 30) -> str:
        """The end of the process's output (for error messages)."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def check_alive(self) -> None:
        """Raise with the log's tail when the process has exited."""
        if self.popen.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.popen.returncode}:\n{self.tail()}")

    async def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM (draining), then SIGKILL after `timeout` seconds."""
        if self.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.popen.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.to_thread(self.popen.wait), timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()


@contextlib.asynccontextmanager
async def process(
    name: str, argv: Sequence[str], env: Mapping[str, str], logs: Path
) -> AsyncIterator[Proc]:
    """A child process for the duration of the block."""
    proc = Proc(name, argv, env, logs)
    try:
        yield proc
    finally:
        await proc.stop()


async def wait_http(proc: Proc, url: str, timeout: float = 30.0) -> None:
    """Wait until GET `url` answers 200 (raising if the process dies first)."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while True:
            proc.check_alive()
            try:
                async with http.get(url, timeout=aiohttp.ClientTimeout(total=2)) as response:
                    if response.status == 200:
                        return
            except (aiohttp.ClientError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{proc.name} did not answer {url}:\n{proc.tail()}")
            await asyncio.sleep(0.1)


def mailer_argv(*args: str) -> list[str]:
    """The command line of a `mailer` subcommand, with this interpreter."""
    return [sys.executable, "-m", "mailer.cli", *args]
