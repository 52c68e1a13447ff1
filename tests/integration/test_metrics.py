"""`GET /metrics` on the real service: values move when an email is sent and when its
events arrive; labels stay bounded; MAILER_METRICS=off counts nothing and serves nothing."""

from __future__ import annotations

import asyncio
import random
import time
import uuid

import asyncpg
import orjson
from prometheus_client import generate_latest

from mailer.db.pool import connect
from mailer.delivery import store
from mailer.delivery.email import EmailRequest
from mailer.delivery.enqueue import insert_jobs, new_job
from mailer.metrics import count
from mailer.ops.gauges import DatabaseGauges
from mailer.simulator.server import SimulatorServer
from mailer.tracking.intake import store_callback
from mailer.webhooks.dispatch import Dispatcher
from tests.integration.harness import LOOPBACK, TEST_BOX, Service, running_service
from tests.integration.test_recording import MESSAGE_ID, _claimed_job, _sent
from tests.integration.test_webhooks import (
    Clock,
    event,
    new_app,
    new_endpoint,
    store_events,
)
from tests.integration.tracking_helpers import (
    email,
    mj_event,
    post_events,
    sent_messages,
    tracking_settings,
)
from tests.integration.webhook_receiver import Receiver
from tests.prometheus import Scrape


async def scrape(service: Service) -> Scrape:
    """One scrape of the service's /metrics."""
    async with service.http.get(service.url + "/metrics") as answer:
        assert answer.status == 200
        assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return Scrape.parse(await answer.text())


async def app_id_of(service: Service, name: str) -> str:
    conn = await connect(service.dsn)
    try:
        return str(await conn.fetchval("SELECT id FROM apps WHERE name = $1", name))
    finally:
        await conn.close()


def grew(before: Scrape, after: Scrape, name: str, /, **labels: str) -> float:
    return after.value(name, **labels) - before.value(name, **labels)


async def test_values_move_when_an_email_is_sent_and_when_its_events_arrive(
    service: Service, simulator: SimulatorServer
) -> None:
    key = await service.create_app("metrics-shop")
    app = await app_id_of(service, "metrics-shop")
    before = await scrape(service)
    assert before.value("mailer_database_up") == 1
    assert before.value("mailer_app_info", app=app, name="metrics-shop") == 1
    assert before.value("mailer_live_workers") >= 1
    assert before.has("mailer_jobs") and before.has("mailer_oldest_due_job_age_seconds")
    assert before.value("mailer_db_pool_connections", state="max") > 0

    body = email("ann@example.org", "bob@example.org")
    job_id = await service.queue(key, body, headers={"Idempotency-Key": "metrics-1"})
    status, _ = await service.request(
        "POST", "/queue", key, json=body, headers={"Idempotency-Key": "metrics-1"}
    )
    assert status == 202
    status, _ = await service.request("POST", "/queue", key, json={"subject": "no recipients"})
    assert status == 422
    ann, bob = await sent_messages(service, simulator, key, job_id)

    started = time.time()
    events = [mj_event("sent", ann), mj_event("bounce", bob)]
    for body_ in (events, events):  # the second post is a redelivery
        assert (await post_events(service, body_))[0] == 200
    test_event = mj_event("sent", ann, MessageID=0, CustomID="", email="test@example.org")
    unknown = mj_event("open", ann, MessageID=987_654_321, CustomID="", email="x@example.org")
    assert (await post_events(service, [test_event, unknown]))[0] == 200

    after = await scrape(service)
    enqueued = "mailer_emails_enqueued_total"
    assert grew(before, after, enqueued, app=app, outcome="accepted") == 1
    assert grew(before, after, enqueued, app=app, outcome="replayed") == 1
    assert grew(before, after, enqueued, app=app, outcome="rejected") == 1
    assert grew(before, after, "mailer_mailjet_calls_total", outcome="success") >= 1
    assert grew(before, after, "mailer_mailjet_call_duration_seconds_count", operation="send") >= 1
    sent = "mailer_recipients_sent_total"
    assert grew(before, after, sent, app=app, result="accepted") == 2
    assert grew(before, after, "mailer_jobs_finished_total", state="done") >= 1
    assert grew(before, after, "mailer_send_latency_seconds_count") >= 1

    events_total = "mailer_mailjet_events_total"
    assert grew(before, after, events_total, type="sent", outcome="applied", app=app) == 1
    assert grew(before, after, events_total, type="bounce", outcome="applied", app=app) == 1
    assert grew(before, after, events_total, type="sent", outcome="duplicate") == 1
    assert grew(before, after, events_total, type="bounce", outcome="duplicate") == 1
    assert grew(before, after, events_total, type="sent", outcome="test") == 1
    assert grew(before, after, events_total, type="open", outcome="unknown_message") == 1
    for kind in ("sent", "bounce", "open"):
        last = after.value("mailer_mailjet_last_event_timestamp_seconds", type=kind)
        assert started - 1 <= last <= time.time() + 1
    assert grew(before, after, "mailer_suppressions_added_total", reason="hard_bounce") == 1

    requests = "mailer_http_requests_total"
    assert grew(before, after, requests, route="/queue", method="POST", status="202") == 2
    assert grew(before, after, requests, route="/queue", method="POST", status="422") == 1
    assert grew(before, after, requests, route="/events", method="POST", status="200") == 3
    assert grew(before, after, requests, route="/status/{job_id}", method="GET") >= 1
    # Bounded labels: route templates, never a job id, an address or a raw path.
    values = after.label_values()
    assert job_id not in values
    assert not [v for v in values if "@" in v or v.startswith(f"/status/{job_id[:8]}")]


async def test_an_unknown_path_counts_as_unmatched(service: Service) -> None:
    before = await scrape(service)
    for path in ("/no/such/path", f"/status/{uuid.uuid4()}/x"):
        async with service.http.get(service.url + path) as answer:
            assert answer.status == 404
    after = await scrape(service)
    assert grew(before, after, "mailer_http_requests_total", route="unmatched", status="404") == 2


async def test_the_database_gauges_are_read_at_most_once_per_cache_period(
    pool: asyncpg.Pool,
) -> None:
    cached, fresh = DatabaseGauges(pool, cache_seconds=3600), DatabaseGauges(pool, cache_seconds=0)
    for gauges in (cached, fresh):
        await gauges.refresh()
        assert _queued(gauges) == 0
    app_id = await pool.fetchval(
        "INSERT INTO apps (id, name) VALUES (gen_random_uuid(), 'g') RETURNING id"
    )
    request = EmailRequest.model_validate(email(send_at="2099-01-01T00:00:00Z"))
    async with pool.acquire() as conn, conn.transaction():
        await insert_jobs(conn, [new_job(app_id, request)])
    for gauges in (cached, fresh):
        await gauges.refresh()
    assert (_queued(cached), _queued(fresh)) == (0, 1)
    assert Scrape.parse(generate_latest(fresh).decode()).value("mailer_jobs_due") == 0


def _queued(gauges: DatabaseGauges) -> float:
    return Scrape.parse(generate_latest(gauges).decode()).value("mailer_jobs", state="queued")


async def test_with_metrics_off_nothing_is_counted_or_served(db_dsn: str) -> None:
    settings = tracking_settings(metrics=False)
    try:
        async with running_service(db_dsn, None, worker=False, settings=settings) as service:
            key = await service.create_app("quiet")
            app = await app_id_of(service, "quiet")
            status, body = await service.request("GET", "/metrics", None)
            assert status == 404 and body["error"] == "not_found", body
            await service.queue(key, email())
            await asyncio.sleep(0)
            assert not count.enabled()
    finally:
        count.set_enabled(True)
    from prometheus_client import REGISTRY

    labels = {"app": app, "outcome": "accepted"}
    assert REGISTRY.get_sample_value("mailer_emails_enqueued_total", labels) is None


def _webhook_scrape() -> Scrape:
    return Scrape.parse(generate_latest().decode())


async def test_webhook_deliveries_are_counted_by_outcome_with_their_lag(
    db_dsn: str, pool: asyncpg.Pool
) -> None:
    clock = Clock()
    async with (
        running_service(db_dsn, None, worker=False) as service,
        Receiver(script=[500], default=200) as flaky,
        Receiver(default=410) as gone,
        Dispatcher(
            pool, clock=clock, rng=random.Random(3), targets=LOOPBACK, box=TEST_BOX
        ) as dispatcher,
    ):
        key, app_id = await new_app(service, pool, "hooks")
        await new_endpoint(service, key, flaky.url)
        await new_endpoint(service, key, gone.url)
        before = _webhook_scrape()
        await store_events(pool, [event(app_id)])
        assert await dispatcher.run_once() == 2  # flaky answers 500, gone 410
        clock.advance(hours=1)
        assert await dispatcher.run_once() == 1  # flaky answers 200 now
        after = _webhook_scrape()
    deliveries = "mailer_webhook_deliveries_total"
    assert grew(before, after, deliveries, outcome="retrying") == 1
    assert grew(before, after, deliveries, outcome="failed") == 1
    assert grew(before, after, deliveries, outcome="delivered") == 1
    assert grew(before, after, "mailer_webhook_delivery_lag_seconds_count") == 1
    assert grew(before, after, "mailer_webhook_delivery_lag_seconds_sum") >= 3600
    assert grew(before, after, "mailer_webhook_endpoints_disabled_total", reason="gone") == 1


async def test_an_event_that_arrives_before_its_send_result_is_counted_early(
    pool: asyncpg.Pool,
) -> None:
    job_id = await _claimed_job(pool)
    app = str(await pool.fetchval("SELECT app_id FROM jobs WHERE id = $1", job_id))
    bounce = {
        "event": "bounce",
        "time": int(time.time()),
        "MessageID": MESSAGE_ID,
        "email": "ann@example.org",
        "CustomID": "",
        "blocked": False,
        "hard_bounce": True,
        "error_related_to": "recipient",
        "error": "user unknown",
    }
    before = _webhook_scrape()
    result = await store_callback(pool, orjson.dumps([bounce]))
    assert (result.stored, result.linked) == (1, 0)
    waiting = _webhook_scrape()
    await store.record(pool, _sent(job_id), worker_id="test")
    after = _webhook_scrape()
    events_total = "mailer_mailjet_events_total"
    assert grew(before, waiting, events_total, type="bounce", outcome="unknown_message") == 1
    assert grew(before, waiting, events_total, type="bounce", outcome="early") == 0
    assert grew(waiting, after, events_total, type="bounce", outcome="early", app=app) == 1
    assert grew(waiting, after, "mailer_suppressions_added_total", reason="hard_bounce") == 1
