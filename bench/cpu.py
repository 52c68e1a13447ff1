"""CPU time of processes, from Linux's /proc, sampled while a scenario runs.

A `CpuMeter` samples a changing set of processes (a Mailer process and its children, or
the PostgreSQL backends serving one database) every few tenths of a second and adds up, for
each process, the CPU time it used between its first and its last sample; a process that
appears meanwhile counts from zero (it was not there before).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

import asyncpg

from bench import infra

_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of one process (its threads included), None if gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces: split after it.
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS_PER_SECOND


def available() -> bool:
    """Whether this machine has /proc with per-process CPU times."""
    return cpu_seconds(os.getpid()) is not None


PidSource = Callable[[], Awaitable[Iterable[int]]]


class CpuMeter:
    """CPU seconds used by the processes `source` names, from `start()` to `stop()`."""

    def __init__(self, source: PidSource, *, interval: float = 0.2) -> None:
        self._source = source
        self._interval = interval
        self._first: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._task: asyncio.Task[None] | None = None

    async def _sample(self, *, initial: bool = False) -> None:
        for pid in await self._source():
            used = cpu_seconds(pid)
            if used is None:
                continue
            self._first.setdefault(pid, used if initial else 0.0)
            self._last[pid] = used

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self._sample()

    async def start(self) -> None:
        """Take the first sample and keep sampling in the background."""
        await self._sample(initial=True)
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> float:
        """Take the last sample; the CPU seconds used in between."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._sample()
        return sum(self._last[pid] - self._first[pid] for pid in self._last)


def mailer_pids(proc: infra.Proc) -> PidSource:
    """A Mailer process and its children (uvicorn's workers)."""

    async def pids() -> Iterable[int]:
        return [proc.pid, *infra.child_pids(proc.pid)]

    return pids


BACKENDS = (
    "SELECT pid FROM pg_stat_activity "
    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
)
"""The PostgreSQL backends serving the database (the asking connection's left out)."""
SHARED = "SELECT pid FROM pg_stat_activity WHERE backend_type <> 'client backend'"
"""The server's processes that serve no one client: WAL writer, checkpointer, background
writer, autovacuum (on a shared server, their work for other databases too)."""


def pg_pids(conn: asyncpg.Connection, query: str, lock: asyncio.Lock) -> PidSource:
    """The server processes `query` lists, read on `conn` (which `lock` guards: several
    meters may sample at the same time); `conn`'s own backend is left out."""

    async def pids() -> Iterable[int]:
        async with lock:
            rows = await conn.fetch(query)
        return [row["pid"] for row in rows]

    return pids


async def local_server(conn: asyncpg.Connection) -> bool:
    """Whether the PostgreSQL `conn` is on is this machine (its backends in our /proc)."""
    return bool(
        await conn.fetchval(
            "SELECT inet_server_addr() IS NULL OR host(inet_server_addr()) = '127.0.0.1'"
        )
    )


class ProcessKinds:
    """CPU seconds by process kind (Mailer processes by name, and PostgreSQL's backends of
    one database), measured between `start()` and `stop()`."""

    def __init__(
        self, conn: asyncpg.Connection, procs: dict[str, infra.Proc], exclude: Iterable[int] = ()
    ) -> None:
        lock = asyncio.Lock()
        self.meters = {name: CpuMeter(mailer_pids(proc)) for name, proc in procs.items()}
        backends = pg_pids(conn, BACKENDS, lock)
        left_out = set(exclude)  # the harness's own connections besides `conn`

        async def serving() -> Iterable[int]:
            return [pid for pid in await backends() if pid not in left_out]

        self.meters["PostgreSQL backends"] = CpuMeter(serving)

    async def start(self) -> None:
        """Take the first samples."""
        for meter in self.meters.values():
            await meter.start()

    async def stop(self) -> dict[str, float]:
        """CPU seconds by kind since `start()`."""
        return {name: await meter.stop() for name, meter in self.meters.items()}
