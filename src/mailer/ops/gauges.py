"""The database-wide gauges of the API's /metrics: queue depth, oldest due job, live
workers, webhook backlog, endpoints, app names.

Read at scrape time in one round trip from indexes, and kept for `CACHE_SECONDS`, so that
however many Prometheis scrape however many API processes, the database sees at most one
read per process every few seconds; nothing is read per request. Every API exports the
same values (they describe the database, not the process): dashboards take `max`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass

import asyncpg
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily
from prometheus_client.metrics_core import Metric

from mailer.db.queries import Queries
from mailer.logs import describe
from mailer.ops.heartbeat import ALIVE_WITHIN
from mailer.ops.rows import AppName, MetricGauges

Q = Queries("mailer.ops")
log = logging.getLogger(__name__)

CACHE_SECONDS = 5.0
READ_TIMEOUT = 2.0


@dataclass(frozen=True)
class Snapshot:
    """One reading of the database, and whether it succeeded."""

    gauges: MetricGauges | None
    apps: list[AppName]


class DatabaseGauges:
    """Reads the gauges at most once per `cache_seconds`; renders them as a collector."""

    def __init__(self, pool: asyncpg.Pool, *, cache_seconds: float = CACHE_SECONDS) -> None:
        self._pool = pool
        self._cache_seconds = cache_seconds
        self._snapshot = Snapshot(None, [])
        self._read_at = -float("inf")
        self._lock = asyncio.Lock()

    async def refresh(self) -> None:
        """Read the database again unless the last reading is recent (one reader at once)."""
        async with self._lock:
            if time.monotonic() - self._read_at < self._cache_seconds:
                return
            try:
                async with asyncio.timeout(READ_TIMEOUT), self._pool.acquire() as conn:
                    gauges = await conn.fetchrow(
                        Q.metric_gauges, ALIVE_WITHIN, record_class=MetricGauges
                    )
                    apps = await conn.fetch(Q.app_names, record_class=AppName)
                self._snapshot = Snapshot(gauges, list(apps))
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                # The process metrics are still served; `mailer_database_up` says why not these.
                log.debug("metrics: reading the gauges failed", extra={"error": describe(exc)})
                self._snapshot = Snapshot(None, self._snapshot.apps)
            self._read_at = time.monotonic()

    def collect(self) -> Iterator[Metric]:
        """The gauges of the last reading (prometheus_client's collector protocol)."""
        g = self._snapshot.gauges
        yield GaugeMetricFamily(
            "mailer_database_up",
            "Whether the last read of the gauges below succeeded",
            value=0 if g is None else 1,
        )
        apps = InfoMetricFamily("mailer_app", "The name of each app (join on the app label)")
        for app in self._snapshot.apps:
            apps.add_metric([], {"app": str(app.id), "name": app.name})
        yield apps
        if g is None:
            return
        jobs = GaugeMetricFamily("mailer_jobs", "Jobs in the queue, by state", labels=["state"])
        jobs.add_metric(["queued"], g.queued)
        jobs.add_metric(["sending"], g.sending)
        yield jobs
        for name, help_text, value in (
            ("mailer_jobs_due", "Queued jobs whose time has come", g.due),
            (
                "mailer_oldest_due_job_age_seconds",
                "How long the oldest due job has waited (0: none waits)",
                g.oldest_due_seconds,
            ),
            ("mailer_live_workers", "Workers whose heartbeat is recent", g.live_workers),
            (
                "mailer_webhook_deliveries_due",
                "Webhook deliveries due and not yet delivered",
                g.webhooks_pending,
            ),
            (
                "mailer_webhook_oldest_due_seconds",
                "How long the oldest due webhook delivery has waited",
                g.webhooks_oldest_pending_seconds,
            ),
        ):
            yield GaugeMetricFamily(name, help_text, value=value)
        endpoints = GaugeMetricFamily(
            "mailer_webhook_endpoints", "Webhook endpoints, by state", labels=["state"]
        )
        endpoints.add_metric(["enabled"], g.endpoints_enabled)
        endpoints.add_metric(["disabled"], g.endpoints_disabled)
        yield endpoints
