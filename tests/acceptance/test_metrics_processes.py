"""Metrics across real processes: `mailer api --workers 2` answers every scrape with the sum
of both processes (prometheus_client's multiprocess mode, a directory per start), and
`mailer worker` serves its own on MAILER_METRICS_PORT."""

from __future__ import annotations

import json
import socket
import time
import urllib.request

import pytest

from tests.acceptance.test_operator import (
    Operator,
    _free_port,
    _http,
    _wait_listening,
)
from tests.acceptance.test_startup import _one_error_line, _start
from tests.prometheus import Scrape

pytestmark = pytest.mark.slow

EMAILS = 12


def scrape(url: str) -> Scrape:
    with urllib.request.urlopen(url, timeout=10) as answer:
        assert answer.status == 200
        return Scrape.parse(answer.read().decode())


def scrape_until(url: str, name: str, at_least: float, **labels: str) -> Scrape:
    deadline = time.monotonic() + 30
    while True:
        found = scrape(url)
        if found.value(name, **labels) >= at_least or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_two_api_processes_and_a_worker_export_the_whole_service(operator: Operator) -> None:
    simulator = operator.start("simulator", "--port", str(operator.simulator_port))
    _wait_listening(operator.simulator_port, simulator)
    operator.run("migrate")
    key = json.loads(operator.run("apps", "create", "shop", "--json"))["api_key"]
    base = f"http://127.0.0.1:{operator.api_port}"
    operator.run("mailjet", "register-webhook", f"{base}/events")

    api = operator.start("api", "--workers", "2")
    worker_port = _free_port()
    operator.env["MAILER_METRICS_PORT"] = str(worker_port)
    worker = operator.start("worker")
    _wait_listening(operator.api_port, api)
    _wait_listening(worker_port, worker)

    email = {
        "from": {"email": "noreply@shop.example"},
        "to": [{"email": "ann+open@example.org"}],
        "subject": "Your order",
        "text": "Thanks!",
    }
    for _ in range(EMAILS):
        assert _http("POST", f"{base}/queue", key, email)[0] == 202

    # Each scrape is answered by one of the two processes, and each shows both processes'
    # counts: the pools' sizes add up, and so do the emails and the events they took in.
    events = "mailer_mailjet_events_total"
    scrape_until(f"{base}/metrics", events, 2 * EMAILS, outcome="applied")
    time.sleep(1.5)  # each process writes its per-request counts at least every second
    for _ in range(8):
        found = scrape(f"{base}/metrics")
        assert found.value("mailer_emails_enqueued_total", outcome="accepted") == EMAILS
        assert found.value(events, type="sent", outcome="applied") == EMAILS
        assert found.value(events, type="open", outcome="applied") == EMAILS
        assert found.value("mailer_db_pool_connections", pool="api", state="max") == 2 * 10
        assert found.value("mailer_live_workers") == 1
        assert found.value("mailer_http_requests_total", route="/queue", status="202") == EMAILS

    sent = scrape_until(
        f"http://127.0.0.1:{worker_port}/metrics",
        "mailer_recipients_sent_total",
        EMAILS,
        result="accepted",
    )
    assert sent.value("mailer_recipients_sent_total", result="accepted") == EMAILS
    assert sent.value("mailer_send_latency_seconds_count") == EMAILS
    assert sent.value("mailer_mailjet_calls_total", outcome="success") >= 1
    assert sent.value("mailer_db_pool_connections", pool="worker", state="max") > 0
    assert sent.has("process_resident_memory_bytes")  # one process: the default collectors

    assert operator.stop(worker) == 0
    assert operator.stop(api) == 0
    assert operator.stop(simulator) == 0


def test_a_worker_s_busy_metrics_port_ends_in_one_line_naming_it(db_dsn: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _start(["worker"], DATABASE_URL=db_dsn, MAILER_METRICS_PORT=str(port))
    line = _one_error_line(done)
    assert "MAILER_METRICS_PORT" in line and f"127.0.0.1:{port}" in line
