"""At `info` the API logs its start, stop and summary, never a line per request; real HTTP.
(A worker process's JSON lines: tests/acceptance/test_process_logs.py.)"""

from __future__ import annotations

import logging

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
