"""The async client against a scripted local server."""

from __future__ import annotations

import pytest

from conftest import Scripted
from mailer_client import AsyncClient, ConflictError

EMAIL = {
    "from": {"email": "a@shop.example"},
    "to": [{"email": "b@example.org"}],
    "subject": "Hi",
    "text": "Hello",
}


async def test_async_send_retries_with_the_same_key(scripted: Scripted) -> None:
    scripted.answer(503, {"error": "unavailable", "message": "db"}, Retry_After="2")
    scripted.answer(202, {"job_id": "j1", "status": "queued"})
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    async with AsyncClient(scripted.url, "k", sleep=sleep) as mailer:
        assert await mailer.send(EMAIL) == "j1"
    assert sleeps == [2.0]
    assert len({r.headers["idempotency-key"] for r in scripted.received}) == 1


async def test_async_feed_and_errors(scripted: Scripted) -> None:
    scripted.answer(200, {"events": [{"id": "1"}], "next_cursor": "c1", "has_more": True})
    scripted.answer(200, {"events": [{"id": "2"}], "next_cursor": "c2", "has_more": False})
    scripted.answer(409, {"error": "idempotency_conflict", "message": "used"})
    async with AsyncClient(scripted.url, "k") as mailer:
        assert [e["id"] async for e in mailer.feed()] == ["1", "2"]
        with pytest.raises(ConflictError) as caught:
            await mailer.send(EMAIL, idempotency_key="x")
    assert caught.value.code == "idempotency_conflict"
