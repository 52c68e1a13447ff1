"""Load generators: wrk when installed, else a lean asyncio HTTP/1.1 client.

Both send pre-built raw requests over keep-alive connections, rotate through a list of
bodies, and count answers by status. The scenario that measures the bare endpoint also
measures the generator against a canned-answer server, so its ceiling is in the table.

The Python client also runs open-loop (a fixed request rate, each answer kept with the
wall-clock time its request was sent): the latency scenario needs the job ids it returns.
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, cast

import orjson

from mailer.heap import frozen_heap


def raw_request(
    port: int, method: str, path: str, body: bytes, headers: Mapping[str, str] | None = None
) -> bytes:
    """A complete HTTP/1.1 keep-alive request."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    lines += ["Content-Type: application/json", f"Content-Length: {len(body)}", "", ""]
    return "\r\n".join(lines).encode("latin-1") + body


@dataclass
class LoadResult:
    """What a closed-loop run measured."""

    completed: int
    seconds: float
    statuses: Counter[int]
    errors: int = 0
    p50_ms: float | None = None
    p99_ms: float | None = None
    warmup_statuses: Counter[int] = field(default_factory=Counter)

    @property
    def rate(self) -> float:
        """Completed requests per second."""
        return self.completed / self.seconds if self.seconds else 0.0

    def count(self, status: int) -> int:
        """Answers with this status."""
        return self.statuses.get(status, 0)


class LoadGenerator(Protocol):
    """Runs `connections` keep-alive connections as fast as answers come back."""

    name: str

    async def closed(
        self,
        port: int,
        requests: Sequence[bytes],
        *,
        connections: int,
        duration: float,
        warmup: float,
    ) -> LoadResult:
        """Warm up (not counted), then measure for `duration` seconds."""
        ...


# --- the Python client ----------------------------------------------------------------------


class _Connection(asyncio.Protocol):
    """One keep-alive connection; one request in flight at a time."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[tuple[int, bytes]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(ConnectionError("connection closed"))

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        buffer = self._buffer
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(buffer[:end]).lower()
        at = head.find(b"\r\ncontent-length:")
        if at < 0:
            raise RuntimeError("the load generator needs Content-Length answers")
        stop = head.find(b"\r\n", at + 2)
        length = int(head[at + 17 : stop if stop >= 0 else len(head)])
        total = end + 4 + length
        if len(buffer) < total:
            return
        status = int(head[9:12])
        body = bytes(buffer[end + 4 : total])
        del buffer[:total]
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result((status, body))

    async def send(self, raw: bytes) -> tuple[int, bytes]:
        if self._transport is None:
            raise ConnectionError("not connected")
        self._waiter = asyncio.get_running_loop().create_future()
        self._transport.write(raw)
        return await self._waiter

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


async def _connect(port: int) -> _Connection:
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_connection(_Connection, "127.0.0.1", port)
    return protocol


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


@dataclass
class Sample:
    """One open-loop request: when it was sent (Unix time), its answer, its latency."""

    sent_at: float
    status: int
    body: bytes
    seconds: float


@dataclass
class PythonLoad:
    """The asyncio client (uvloop in the harness): no dependency beyond the standard library."""

    name: str = "python-asyncio"
    _latencies: list[float] = field(default_factory=list)

    async def closed(
        self,
        port: int,
        requests: Sequence[bytes],
        *,
        connections: int,
        duration: float,
        warmup: float,
        gate: asyncio.Event | None = None,
    ) -> LoadResult:
        """Closed loop: every connection sends its next request when the answer is in (and,
        given a `gate`, while it is set: the whole-stack run holds back when the backlog
        grows)."""
        start = time.perf_counter() + warmup
        end = start + duration
        statuses: Counter[int] = Counter()
        outside: Counter[int] = Counter()
        latencies: list[float] = []
        errors = 0

        async def run(index: int) -> None:
            nonlocal errors
            conn = await _connect(port)
            position = index
            try:
                while time.perf_counter() < end:
                    if gate is not None and not gate.is_set():
                        await gate.wait()
                    now = time.perf_counter()
                    if now >= end:
                        break
                    raw = requests[position % len(requests)]
                    position += connections
                    try:
                        status, _ = await conn.send(raw)
                    except ConnectionError:
                        errors += 1
                        conn = await _connect(port)
                        continue
                    done = time.perf_counter()
                    if now >= start and done <= end:
                        statuses[status] += 1
                        latencies.append(done - now)
                    else:
                        outside[status] += 1
            finally:
                conn.close()

        await asyncio.gather(*(run(i) for i in range(connections)))
        return LoadResult(
            completed=sum(statuses.values()),
            seconds=duration,
            statuses=statuses,
            errors=errors,
            p50_ms=_ms(_percentile(latencies, 0.50)),
            p99_ms=_ms(_percentile(latencies, 0.99)),
            warmup_statuses=outside,
        )

    async def open_loop(
        self,
        port: int,
        requests: Sequence[bytes],
        *,
        rate: float,
        duration: float,
        connections: int,
    ) -> list[Sample]:
        """Send at `rate` requests/s for `duration` seconds, whatever the answers' pace.

        A request waits for a free connection only if all `connections` are busy.
        """
        idle: asyncio.Queue[_Connection] = asyncio.Queue()
        for conn in await asyncio.gather(*(_connect(port) for _ in range(connections))):
            idle.put_nowait(conn)
        samples: list[Sample] = []
        tasks: set[asyncio.Task[None]] = set()

        async def one(conn: _Connection, raw: bytes) -> None:
            sent_at, started = time.time(), time.perf_counter()
            try:
                status, body = await conn.send(raw)
            except ConnectionError:
                status, body = 0, b""
                conn = await _connect(port)
            samples.append(Sample(sent_at, status, body, time.perf_counter() - started))
            idle.put_nowait(conn)

        total = int(rate * duration)
        # No long garbage-collector pauses while requests are paced: a full collection over
        # the harness's own data (bodies, samples) took 35-70 ms here, and the requests due
        # meanwhile then went out in one burst, which the latency figures counted against
        # Mailer. The same treatment as Mailer's processes get.
        with frozen_heap():
            begin = time.perf_counter()
            for index in range(total):
                delay = begin + index / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                conn = await idle.get()
                task = asyncio.create_task(one(conn, requests[index % len(requests)]))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            if tasks:
                await asyncio.gather(*tasks)
        while not idle.empty():
            idle.get_nowait().close()
        return samples


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


# --- wrk ------------------------------------------------------------------------------------

_WRK_SCRIPT = """
local dir = "%(dir)s"
local nthreads = %(threads)d
local reqs = {}
local count = 0
local n = 0
counts = {}

-- All requests in one file, their lengths in another; each thread sends every
-- nthreads-th request from its own start, so no two sends repeat a body until the whole
-- list has gone round (args[1]: where this run starts, past an earlier run's requests).
function init(args)
  local f = assert(io.open(dir .. "/requests.bin", "rb"))
  local all = f:read("*a")
  f:close()
  local pos = 1
  for line in io.lines(dir .. "/lengths.txt") do
    local size = tonumber(line)
    count = count + 1
    reqs[count] = string.sub(all, pos, pos + size - 1)
    pos = pos + size
  end
  n = math.floor((tonumber(args[1]) or 0) / nthreads)
end

function request()
  n = n + 1
  return reqs[((n * nthreads + id) %% count) + 1]
end

function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
end

local threads = {}
function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function done(summary, latency, requests)
  local agg = {}
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("counts")) do agg[k] = (agg[k] or 0) + v end
  end
  local parts = {}
  for k, v in pairs(agg) do table.insert(parts, string.format('"%%d": %%d', k, v)) end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %%d, "duration_us": %%d, "errors": %%d, '
    .. '"p50_us": %%d, "p99_us": %%d, "statuses": {%%s}}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99), table.concat(parts, ", ")))
end
"""


@dataclass
class WrkLoad:
    """wrk (C, epoll) with a Lua script that rotates bodies and counts statuses."""

    binary: str
    threads: int = 2
    name: str = "wrk"

    async def closed(
        self,
        port: int,
        requests: Sequence[bytes],
        *,
        connections: int,
        duration: float,
        warmup: float,
    ) -> LoadResult:
        """Warm up with one wrk run, measure with a second."""
        with tempfile.TemporaryDirectory(prefix="mailer-bench-wrk-") as tmp:
            directory = Path(tmp)
            (directory / "requests.bin").write_bytes(b"".join(requests))
            (directory / "lengths.txt").write_text("".join(f"{len(r)}\n" for r in requests))
            threads = min(self.threads, connections)
            script = directory / "bench.lua"
            script.write_text(_WRK_SCRIPT % {"dir": tmp, "threads": threads})
            warm = None
            if warmup > 0:
                warm = await self._run(port, script, connections, warmup, threads, 0)
            start = sum(warm.statuses.values()) + connections if warm is not None else 0
            result = await self._run(port, script, connections, duration, threads, start)
            if warm is not None:
                result.warmup_statuses = warm.statuses
            return result

    async def _run(
        self, port: int, script: Path, connections: int, seconds: float, threads: int, start: int
    ) -> LoadResult:
        argv = [
            self.binary,
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "30s",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}/",
            str(start),
        ]
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        output, _ = await proc.communicate()
        text = output.decode(errors="replace")
        for line in text.splitlines():
            if line.startswith("BENCH_JSON "):
                data = orjson.loads(line.removeprefix("BENCH_JSON "))
                statuses = Counter({int(k): int(v) for k, v in data["statuses"].items()})
                return LoadResult(
                    completed=int(data["requests"]),
                    seconds=data["duration_us"] / 1e6,
                    statuses=statuses,
                    errors=int(data["errors"]),
                    p50_ms=data["p50_us"] / 1000,
                    p99_ms=data["p99_us"] / 1000,
                )
        raise RuntimeError(f"wrk gave no result:\n{text}")


def pick_generator(prefer: str = "auto") -> LoadGenerator:
    """wrk if installed (or asked for), else the Python client."""
    binary = shutil.which("wrk")
    if prefer == "python" or (prefer == "auto" and binary is None):
        return PythonLoad()
    if binary is None:
        raise RuntimeError("wrk is not installed (apt-get install wrk), use --load python")
    return WrkLoad(binary)


def median(values: Sequence[float]) -> float:
    """The median (0 for no values)."""
    return statistics.median(values) if values else 0.0
