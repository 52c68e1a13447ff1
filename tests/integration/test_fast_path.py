"""The enqueue routes' fast path (api/fastpath.py) answers as the usual FastAPI stack does:
every request here goes to an API with the fast path and to one without it, on the same
database, and the two answers must match (status, Mailer's headers, body)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from fastapi import FastAPI

from mailer.api.app import create_app
from mailer.api.fastpath import fast_routes
from mailer.apps import store
from mailer.cli.web import with_dashboard
from mailer.db.pool import connect
from mailer.delivery import limits
from mailer.delivery.enqueue import CommitOutcomeUnknown, Enqueuer
from tests.integration.harness import serve_api, service_settings
from tests.prometheus import Scrape

EMAIL: dict[str, Any] = {
    "from": {"email": "noreply@shop.example"},
    "to": [{"email": "ann@example.org"}],
    "subject": "Hi",
    "text": "Hello",
}
# The headers Mailer itself sets on an answer (the server adds date and server).
COMPARED = frozenset(
    {
        "content-type",
        "content-length",
        "retry-after",
        "www-authenticate",
        "allow",
        "idempotent-replayed",
        "location",
    }
)


def without_fast_path(app: FastAPI) -> FastAPI:
    """`app` with its fast path off: every request takes the usual stack."""
    app._fast_routes = {}  # type: ignore[attr-defined]
    return app


@contextlib.asynccontextmanager
async def two_apis(dsn: str, **settings: Any) -> AsyncIterator[tuple[str, str]]:
    """The base URLs of an API with the fast path and of one without, on `dsn`."""
    config = service_settings(**settings)
    fast, usual = create_app(config, dsn), without_fast_path(create_app(config, dsn))
    async with serve_api(fast) as fast_url, serve_api(usual) as usual_url:
        yield fast_url, usual_url
    # The first API did take its fast path (built on its first request).
    assert sorted(fast._fast_routes or ()) == ["/queue", "/queue/batch"]  # type: ignore[attr-defined]


Answer = tuple[int, dict[str, str], bytes]


async def answer(http: aiohttp.ClientSession, url: str, path: str, **kwargs: Any) -> Answer:
    method = kwargs.pop("method", "POST")
    async with http.request(method, url + path, allow_redirects=False, **kwargs) as r:
        headers = {k.lower(): v for k, v in r.headers.items() if k.lower() in COMPARED}
        if "location" in headers:  # the two APIs' ports differ
            headers["location"] = headers["location"].removeprefix(url)
        return r.status, headers, await r.read()


async def both(
    http: aiohttp.ClientSession, urls: tuple[str, str], path: str, **kwargs: Any
) -> Answer:
    """The answer of both APIs to the same request; they must be the same."""
    fast, usual = [await answer(http, url, path, **kwargs) for url in urls]
    assert fast == usual, (path, kwargs)
    return fast


async def make_keys(dsn: str) -> dict[str, str]:
    conn = await connect(dsn)
    try:
        shop, shop_key = await store.create_app(conn, "shop")
        read = (await store.create_key(conn, shop.id, ["read"])).plaintext
        picky, picky_key = await store.create_app(conn, "picky")
        await store.set_sender_domains(conn, picky.id, ["mail.picky.example"])
        full, full_key = await store.create_app(conn, "full")
        await limits.set_limits(conn, full.id, daily=1)
    finally:
        await conn.close()
    return {"shop": shop_key, "read": read, "picky": picky_key, "full": full_key}


def bearer(key: str, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", **headers}


async def test_every_error_of_the_enqueue_routes_is_the_usual_one(db_dsn: str) -> None:
    keys = await make_keys(db_dsn)
    async with two_apis(db_dsn, max_body_bytes=4096) as urls, aiohttp.ClientSession() as http:
        for path, good in (("/queue", EMAIL), ("/queue/batch", {"emails": [EMAIL]})):
            shop = bearer(keys["shop"])
            cases: list[tuple[int, dict[str, Any]]] = [
                (401, {"json": good}),
                (401, {"json": good, "headers": {"Authorization": "Basic abc"}}),
                (401, {"json": good, "headers": bearer("mk_nope_nope")}),
                (403, {"json": good, "headers": bearer(keys["read"])}),
                (
                    400,
                    {"json": good, "headers": bearer(keys["shop"], **{"Idempotency-Key": "a b"})},
                ),
                (422, {"data": b"{not json", "headers": shop}),
                (422, {"data": b"", "headers": shop}),
                (422, {"json": {"emails": 1, "to": 2}, "headers": shop}),
                (422, {"json": {**EMAIL, "text": "a\u0000b"}, "headers": shop}),
                (422, {"data": b'{"a": 1}', "headers": {**shop, "Content-Type": "text/plain"}}),
                # Declared too large, then streamed too large (chunked: no Content-Length).
                (413, {"json": {**EMAIL, "text": "x" * 5000}, "headers": shop}),
                (413, {"data": _chunks(b"x" * 5000), "headers": shop}),
                (403, {"json": good, "headers": bearer(keys["picky"])}),
                (405, {"method": "GET", "headers": shop}),
                (405, {"method": "PUT", "json": good, "headers": shop}),
                (307, {"json": good, "headers": shop, "path": path + "/"}),
            ]
            for status, kwargs in cases:
                where = kwargs.pop("path", path)
                if "data" in kwargs and not isinstance(kwargs["data"], bytes):
                    # A generator is consumed once: each API gets its own.
                    for url in urls:
                        got = await answer(
                            http, url, where, **{**kwargs, "data": _chunks(b"x" * 5000)}
                        )
                        assert got[0] == status, (where, kwargs, got)
                    continue
                got = await both(http, urls, where, **kwargs)
                assert got[0] == status, (where, kwargs, got)


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 1000):
        yield data[start : start + 1000]


async def test_accepted_replayed_conflicting_and_over_quota_answer_alike(db_dsn: str) -> None:
    keys = await make_keys(db_dsn)
    async with two_apis(db_dsn) as urls, aiohttp.ClientSession() as http:
        for n, url in enumerate(urls):
            keyed = bearer(keys["shop"], **{"Idempotency-Key": f"order-{n}"})
            status, headers, first = await answer(http, url, "/queue", json=EMAIL, headers=keyed)
            assert status == 202 and "idempotent-replayed" not in headers
            again = await answer(http, url, "/queue", json=EMAIL, headers=keyed)
            assert again == (202, {**headers, "idempotent-replayed": "true"}, first)
            changed = {**EMAIL, "subject": "Other"}
            status, _, body = await answer(http, url, "/queue", json=changed, headers=keyed)
            assert (status, b"idempotency_conflict" in body) == (409, True)
            batch = {"emails": [EMAIL, EMAIL]}
            status, _, body = await answer(http, url, "/queue/batch", json=batch, headers=keyed)
            assert status == 202 and body.count(b"job_id") == 2
        # The daily quota of 1 is shared by the two APIs: the first takes it, both refuse next.
        full = bearer(keys["full"])
        assert (await answer(http, urls[0], "/queue", json=EMAIL, headers=full))[0] == 202
        for path, sent in (("/queue", EMAIL), ("/queue/batch", {"emails": [EMAIL]})):
            # The seconds until the UTC day rolls over may tick between the two answers.
            fast, usual = [
                _without_seconds(await answer(http, url, path, json=sent, headers=full))
                for url in urls
            ]
            assert fast == usual and fast[0] == 429 and b"daily_quota_exceeded" in fast[2]


def _without_seconds(got: Answer) -> Answer:
    status, headers, body = got
    assert int(headers.pop("retry-after")) > 0
    return status, headers, re.sub(rb'"retry_after":\d+', b'"retry_after":0', body)


async def test_database_errors_answer_503_and_bugs_a_bare_500(
    db_dsn: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    keys = await make_keys(db_dsn)
    raised: list[BaseException] = []

    async def failing(self: Enqueuer, job: Any) -> Any:
        raise raised[-1]

    async def failing_batch(self: Enqueuer, jobs: Any) -> Any:
        raise raised[-1]

    monkeypatch.setattr(Enqueuer, "enqueue", failing)
    monkeypatch.setattr(Enqueuer, "enqueue_batch", failing_batch)
    async with two_apis(db_dsn) as urls, aiohttp.ClientSession() as http:
        shop = bearer(keys["shop"])
        for path, good in (("/queue", EMAIL), ("/queue/batch", {"emails": [EMAIL]})):
            raised.append(ConnectionRefusedError("the database is away"))
            status, headers, body = await both(http, urls, path, json=good, headers=shop)
            assert (status, headers["retry-after"]) == (503, "5")
            assert b'"unavailable"' in body and b"outcome" not in body
            raised.append(CommitOutcomeUnknown("broke"))
            status, headers, body = await both(http, urls, path, json=good, headers=shop)
            assert status == 503 and b'"outcome":"unknown"' in body
            raised.append(RuntimeError("a secret detail"))
            with caplog.at_level(logging.ERROR):
                status, headers, body = await both(http, urls, path, json=good, headers=shop)
            assert (status, body) == (500, b'{"error":"internal_error","message":"internal error"}')
            logged = [r for r in caplog.records if r.getMessage() == "unhandled error"]
            assert len(logged) == 2 and all(r.exc_info is None for r in logged)
            caplog.clear()
            # The connection stays usable after each (keep-alive is not dropped).
            await asyncio.sleep(0)


async def scrape(http: aiohttp.ClientSession, url: str) -> Scrape:
    async with http.get(url + "/metrics") as r:
        assert r.status == 200
        return Scrape.parse(await r.text())


async def test_the_fast_path_counts_every_answer_under_its_route(db_dsn: str) -> None:
    keys = await make_keys(db_dsn)
    async with two_apis(db_dsn, max_body_bytes=4096) as urls, aiohttp.ClientSession() as http:
        fast = urls[0]
        before = await scrape(http, fast)
        await answer(http, fast, "/queue", json=EMAIL, headers=bearer(keys["shop"]))
        await answer(http, fast, "/queue", json=EMAIL)
        await answer(http, fast, "/queue", json={**EMAIL, "text": "x" * 5000})
        await answer(
            http, fast, "/queue/batch", json={"emails": [EMAIL]}, headers=bearer(keys["shop"])
        )
        after = await scrape(http, fast)
    name = "mailer_http_requests_total"
    for route, status in (
        ("/queue", "202"),
        ("/queue", "401"),
        ("/queue", "413"),
        ("/queue/batch", "202"),
    ):
        labels = {"route": route, "method": "POST", "status": status}
        assert after.value(name, **labels) - before.value(name, **labels) == 1, labels
    accepted = "mailer_emails_enqueued_total"
    assert (
        after.value(accepted, outcome="accepted") - before.value(accepted, outcome="accepted") == 2
    )


def test_the_fast_path_takes_only_the_enqueue_routes_and_stands_aside_for_more_middleware(
    db_dsn: str,
) -> None:
    app = create_app(service_settings(), db_dsn)
    assert sorted(fast_routes(app)) == ["/queue", "/queue/batch"]
    # As `mailer api` serves it, with the dashboard mounted.
    assert sorted(fast_routes(with_dashboard(create_app(service_settings(), db_dsn)))) == [
        "/queue",
        "/queue/batch",
    ]
    app.add_middleware(_Passthrough)
    assert fast_routes(app) == {}


class _Passthrough:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)
