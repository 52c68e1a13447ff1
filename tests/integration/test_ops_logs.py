"""At `info` an operator sees start, stop and a summary per process, never a line per
request; `MAILER_LOG_FORMAT=json` makes every line JSON. Real processes and real HTTP."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time

import orjson
import pytest

from mailer.config import safe_dsn
from mailer.ops.activity import ACTIVITY
from tests.integration.harness import running_service

EMAIL = {
    "from": {"email": "a@shop.example"},
    "to": [{"email": "b@example.org"}],
    "subject": "s",
    "text": "t",
}


async def test_the_api_counts_what_it_accepts_and_logs_nothing_per_request(
    db_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with running_service(db_dsn, None, worker=False) as svc:
        key = await svc.create_app()
        started = [r for r in caplog.records if getattr(r, "action", None) == "api_started"]
        assert len(started) == 1
        assert started[0].__dict__["database"] == safe_dsn(db_dsn)
        caplog.clear()
        ACTIVITY.take()
        for n in range(3):
            await svc.queue(key, EMAIL, headers={"Idempotency-Key": f"k{n}"})
        await svc.queue(key, EMAIL, headers={"Idempotency-Key": "k0"})  # a replay
        status, _ = await svc.request("POST", "/queue/batch", key, json={"emails": [EMAIL, EMAIL]})
        assert status == 202
        status, _ = await svc.request("POST", "/queue", key, json={"to": []})
        assert status == 422
        counts = ACTIVITY.take()
        assert [r for r in caplog.records if r.levelno >= logging.INFO] == []
    assert counts["emails_accepted"] == 5
    assert counts["emails_replayed"] == 1
    assert counts["emails_rejected"] == 1
    assert [r for r in caplog.records if getattr(r, "action", None) == "api_stopped"]


def test_a_worker_process_logs_json_start_summary_and_stop(db_dsn: str) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": db_dsn,
        "MAILJET_API_URL": "http://127.0.0.1:9",
        "MAILER_LOG_FORMAT": "json",
        "MAILER_LOG_SUMMARY_SECONDS": "0.5",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailer.cli", "worker"],
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stderr is not None
        lines: list[dict[str, object]] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            lines.append(orjson.loads(line))  # every line is JSON
            if lines[-1].get("action") == "summary":
                break
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    lines += [orjson.loads(line) for line in rest.splitlines()]
    actions = [line.get("action") for line in lines]
    assert proc.returncode == 0
    assert "worker_process_started" in actions and "summary" in actions
    assert actions[-1] == "worker_process_stopped"
    start = next(line for line in lines if line.get("action") == "worker_process_started")
    assert start["level"] == "info" and start["worker_concurrency"] == 16
    assert "postgres@" not in str(start)  # the DSN without its user or password
