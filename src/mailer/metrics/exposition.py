"""Rendering the metrics for a scrape, from one process or from all of a service's.

One process (`mailer run`, `mailer worker`, `mailer api` with one process): the default
registry, with prometheus_client's process and Python collectors. `mailer api --workers N`:
prometheus_client's multiprocess mode. The parent makes a fresh directory for the service
start (:func:`multiprocess_directory`) before it starts the N processes, each process keeps
its values in files there, and whichever process answers a scrape adds them all up. Extra
collectors (the database-wide gauges) are rendered after the process metrics.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

from mailer.metrics.count import flush

__all__ = [
    "CONTENT_TYPE",
    "MULTIPROCESS_ENV",
    "multiprocess_directory",
    "process_exited",
    "render",
]

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
# The classic text format, which every Prometheus version reads (what generate_latest writes
# with its default escaping).
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4


@contextlib.contextmanager
def multiprocess_directory() -> Iterator[str]:
    """A fresh directory for the metric files of the processes started inside, named in
    the environment they inherit; removed when the service stops.

    Must be entered before the processes import prometheus_client (it picks its mode then).
    """
    directory = tempfile.mkdtemp(prefix="mailer-metrics-")
    previous = os.environ.get(MULTIPROCESS_ENV)
    os.environ[MULTIPROCESS_ENV] = directory
    try:
        yield directory
    finally:
        if previous is None:
            os.environ.pop(MULTIPROCESS_ENV, None)
        else:
            os.environ[MULTIPROCESS_ENV] = previous
        shutil.rmtree(directory, ignore_errors=True)


def _multiprocess() -> str | None:
    return os.environ.get(MULTIPROCESS_ENV)


def process_exited() -> None:
    """Drop this process's live gauges (pool connections) from the sums, at its clean exit."""
    directory = _multiprocess()
    if directory is not None and os.path.isdir(directory):
        mark_process_dead(os.getpid(), directory)  # type: ignore[no-untyped-call]


class _Chain:
    """Several collectors rendered as one."""

    def __init__(self, collectors: Iterable[Collector]) -> None:
        self._collectors = list(collectors)

    def collect(self) -> Iterator[Metric]:
        for collector in self._collectors:
            yield from collector.collect()


def render(extra: Iterable[Collector] = ()) -> bytes:
    """The Prometheus text exposition of this process (or of every process of the service,
    in multiprocess mode), followed by `extra`."""
    flush()  # this process's buffered counts; the others' are at most a second old
    directory = _multiprocess()
    if directory is None:
        processes: Collector = REGISTRY
    else:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
        processes = registry
    return generate_latest(_Chain([processes, *extra]))
