"""`mailer_client` against a running Mailer over real HTTP: sends are stored and sent
through the simulator, the feed iterates the app's events, errors carry Mailer's body."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from mailer.simulator import SimulatorServer
from mailer_client import AsyncClient, Client, ConflictError, InvalidRequestError, NotFoundError
from tests.integration.harness import Service
from tests.integration.live import live_mailer, wait_recipients

Live = tuple[Service, SimulatorServer]


@pytest.fixture
async def live(db_dsn: str) -> AsyncIterator[Live]:
    async with live_mailer(db_dsn) as both:
        yield both


def email(to: str) -> dict[str, object]:
    return {
        "from": {"email": "shop@example.org", "name": "Shop"},
        "to": [{"email": to}],
        "subject": "Your order",
        "text": "Thanks!",
        "html": '<p><a href="http://localhost/order">Thanks!</a></p>',
        "metadata": {"order": "42"},
    }


async def test_sync_client_sends_and_iterates_the_feed(live: Live) -> None:
    service, simulator = live
    key = await service.create_app("shop")
    mailer = Client(service.url, key, timeout=10)
    try:
        job_id = await asyncio.to_thread(
            mailer.send,
            from_="Shop <shop@example.org>",
            to="ann+click@example.org",
            subject="Your order",
            text="Thanks!",
            html='<p><a href="http://localhost/order">Thanks!</a></p>',
        )
        done = await wait_recipients(service, key, job_id, {"clicked"})
        assert done["recipients"][0]["email"] == "ann+click@example.org"
        status = await asyncio.to_thread(mailer.status, job_id)
        assert status["recipients"][0]["status"] == "clicked"
        assert simulator.state.messages_for(job_id)

        def read_feed() -> list[dict[str, object]]:
            return list(mailer.feed(limit=1))  # one event a page: the cursor is followed

        deadline = time.monotonic() + 10
        while True:  # the feed shows an event once no earlier commit can still appear
            types = [e["type"] for e in await asyncio.to_thread(read_feed)]
            if len(types) >= 3 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        assert types == ["email.sent", "email.opened", "email.clicked"]
        opened = await asyncio.to_thread(lambda: list(mailer.feed(types=["open"])))
        assert [e["type"] for e in opened] == ["email.opened"]  # an old name
    finally:
        mailer.close()


async def test_sync_client_batch_and_errors_carry_mailers_body(live: Live) -> None:
    service, _ = live
    key = await service.create_app("shop")
    other = await service.create_app("other")
    with Client(service.url, key) as mailer, Client(service.url, other) as stranger:
        ids = await asyncio.to_thread(
            mailer.send_batch, [email("a@example.org"), email("b@example.org")]
        )
        assert len(ids) == 2
        for job_id in ids:
            await wait_recipients(service, key, job_id)
        with pytest.raises(InvalidRequestError) as invalid:
            await asyncio.to_thread(mailer.send, email("not-an-address"))
        assert invalid.value.status == 422 and invalid.value.code == "invalid_request"
        assert [d["field"] for d in invalid.value.details] == ["to[0].email"]
        with pytest.raises(NotFoundError):
            await asyncio.to_thread(stranger.status, ids[0])


async def test_async_client_send_is_idempotent_per_key(live: Live) -> None:
    service, _ = live
    key = await service.create_app("shop")
    async with AsyncClient(service.url, key) as mailer:
        first = await mailer.send(email("ann@example.org"), idempotency_key="order-42")
        again = await mailer.send(email("ann@example.org"), idempotency_key="order-42")
        fresh = await mailer.send(email("ann@example.org"))
        assert first == again != fresh
        await wait_recipients(service, key, first)
        assert (await mailer.status(first))["recipients"][0]["status"] in {"sent", "opened"}
        deadline = time.monotonic() + 10
        while True:  # the feed may lag the status by a commit
            jobs = {e["job_id"] async for e in mailer.feed()}
            if first in jobs or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        assert first in jobs


async def test_jobs_iterates_the_apps_jobs_and_acts_on_one(live: Live) -> None:
    service, _ = live
    key = await service.create_app("shop")
    async with AsyncClient(service.url, key) as mailer:
        sent = [await mailer.send(email(f"u{i}@example.org"), tags=["t"]) for i in range(3)]
        await mailer.send(email("other@example.org"))
        listed = [job async for job in mailer.jobs(limit=2, tag="t")]
        assert [job["job_id"] for job in listed] == list(reversed(sent))
        assert all(job["tags"] == ["t"] for job in listed)
        later = datetime.now(UTC) + timedelta(hours=1)
        scheduled = await mailer.send(email("s@example.org"), send_at=later)
        moved = await mailer.reschedule(scheduled, later + timedelta(hours=1))
        assert datetime.fromisoformat(moved["send_at"]) == later + timedelta(hours=1)
        assert (await mailer.cancel(scheduled))["status"] == "canceled"
        with pytest.raises(ConflictError):
            await mailer.cancel(scheduled)
        with pytest.raises(ConflictError):
            await mailer.retry(scheduled)


async def test_suppressions_are_added_listed_and_removed(live: Live) -> None:
    service, _ = live
    key = await service.create_app("shop")
    async with AsyncClient(service.url, key) as mailer:
        for address in ("b+x@example.org", "a@example.org", "c@example.org"):
            await mailer.suppress(address, reason="asked us")
        listed = [entry["email"] async for entry in mailer.suppressions(limit=2)]
        assert listed == ["a@example.org", "b+x@example.org", "c@example.org"]
        await mailer.unsuppress("b+x@example.org", reason="asked again")
        with pytest.raises(NotFoundError):
            await mailer.unsuppress("b+x@example.org", reason="asked again")
        history = await mailer.suppression_history("b+x@example.org")
        assert not history["suppressed"]
        assert [(c["action"], c["reason"]) for c in history["history"]] == [
            ("suppressed", "asked us"),
            ("reactivated", "asked again"),
        ]
    with Client(service.url, key) as sync:
        remaining = await asyncio.to_thread(lambda: [e["email"] for e in sync.suppressions()])
    assert remaining == ["a@example.org", "c@example.org"]
