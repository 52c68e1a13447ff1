"""The asynchronous client: the same surface as `Client`, awaited."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import httpx

from mailer_client import _wire
from mailer_client.errors import TransportError
from mailer_client.retry import RETRY_STATUSES, RetryPolicy

__all__ = ["AsyncClient"]

Filter = str | int | datetime | Iterable[str] | None


class AsyncClient:
    """An asyncio Mailer API client for one app; share one per event loop.

    Use it as an async context manager, or await `aclose()`. Every send carries an Idempotency-Key
    (generated unless given) that its retries reuse, so a retried send is stored once.

    Args:
        base_url: where Mailer listens, e.g. ``http://127.0.0.1:8000``.
        api_key: the app's API key.
        timeout: seconds per attempt (connect, read, write each).
        retry: how 429/503 answers and transport failures are retried.
        transport: an httpx transport to use instead of the network (tests, proxies).
        sleep: how to wait between retries (tests pass a recorder).
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers=_wire.auth_headers(api_key),
            timeout=timeout,
            transport=transport,
        )
        self._retry = retry or RetryPolicy()
        self._sleep = sleep

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self._http.aclose()

    async def send(
        self,
        email: Mapping[str, Any] | None = None,
        /,
        *,
        idempotency_key: str | None = None,
        tags: Sequence[str] | None = None,
        **fields: Any,
    ) -> str:
        """Queue one email; return its job id once Mailer has stored it.

        The email is a mapping as `POST /queue` takes it and/or keyword fields (``from_``
        for ``from``); addresses may be strings like ``"Ann <ann@example.org>"``. ``tags``
        (at most 10, each 1-64 of letters, digits and ``_.:-``) come back in its status,
        its events and webhooks, and filter ``jobs()`` and the feed.
        """
        if tags is not None:
            fields = {**fields, "tags": list(tags)}
        body = _wire.email_body(email, fields)
        key = idempotency_key or _wire.new_idempotency_key()
        answer = await self._call("POST", "/queue", json=body, headers={"Idempotency-Key": key})
        return _wire.job_id_of(answer)

    async def send_batch(
        self, emails: Sequence[Mapping[str, Any]], *, idempotency_key: str | None = None
    ) -> list[str]:
        """Queue up to 500 emails all-or-nothing; return their job ids in order."""
        key = idempotency_key or _wire.new_idempotency_key()
        answer = await self._call(
            "POST",
            "/queue/batch",
            json=_wire.batch_body(emails),
            headers={"Idempotency-Key": key},
        )
        return _wire.job_ids_of(answer)

    async def cancel(self, job_id: str) -> dict[str, Any]:
        """Cancel a scheduled or queued job (`ConflictError` when it is too late)."""
        answer: dict[str, Any] = await self._call("POST", f"/jobs/{quote(job_id, safe='')}/cancel")
        return answer

    async def reschedule(self, job_id: str, send_at: datetime) -> dict[str, Any]:
        """Move a scheduled job to `send_at` (`ConflictError` unless still scheduled)."""
        path = f"/jobs/{quote(job_id, safe='')}"
        answer: dict[str, Any] = await self._call(
            "PATCH", path, json={"send_at": send_at.isoformat()}
        )
        return answer

    async def retry(self, job_id: str) -> dict[str, Any]:
        """Send a job whose recipients failed again (same job id, history kept)."""
        answer: dict[str, Any] = await self._call("POST", f"/jobs/{quote(job_id, safe='')}/retry")
        return answer

    async def status(self, job_id: str) -> dict[str, Any]:
        """The job's status document (recipients, attempts, events)."""
        answer: dict[str, Any] = await self._call("GET", f"/status/{quote(job_id, safe='')}")
        return answer

    async def feed_pages(
        self,
        *,
        after: str | None = None,
        limit: int = 100,
        types: Iterable[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> AsyncIterator[_wire.Page]:
        """The app's events page by page, from `after`, until caught up; each page's
        `next_cursor` is where to resume later."""
        filters = {"type": types, "since": since, "until": until}
        async for page in self._pages("/feed", "events", after, limit, filters):
            yield page

    async def feed(
        self,
        *,
        after: str | None = None,
        limit: int = 100,
        types: Iterable[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Every event of the app from `after` on, oldest first, until caught up."""
        async for page in self.feed_pages(
            after=after, limit=limit, types=types, since=since, until=until
        ):
            for item in page.items:
                yield item

    async def jobs_pages(
        self, *, after: str | None = None, limit: int = 100, **filters: Filter
    ) -> AsyncIterator[_wire.Page]:
        """The app's jobs page by page (`GET /jobs`; filters as query parameters)."""
        async for page in self._pages("/jobs", "jobs", after, limit, filters):
            yield page

    async def jobs(
        self, *, after: str | None = None, limit: int = 100, **filters: Filter
    ) -> AsyncIterator[dict[str, Any]]:
        """Every job of the app matching `filters`, from `after` on."""
        async for page in self.jobs_pages(after=after, limit=limit, **filters):
            for item in page.items:
                yield item

    async def suppressions(self, *, limit: int = 100) -> AsyncIterator[dict[str, Any]]:
        """Every address on the app's suppression list, in address order."""
        async for page in self._pages("/suppressions", "suppressions", None, limit, {}):
            for item in page.items:
                yield item

    async def suppress(self, email: str, reason: str | None = None) -> dict[str, Any]:
        """Put an address on the app's suppression list."""
        body = {"email": email} if reason is None else {"email": email, "reason": reason}
        answer: dict[str, Any] = await self._call("POST", "/suppressions", json=body)
        return answer

    async def unsuppress(self, email: str, reason: str) -> None:
        """Take an address off the app's suppression list; ``reason`` (required) is kept in
        the address's history."""
        path = f"/suppressions/{quote(email, safe='@')}"
        await self._call("DELETE", path, params={"reason": reason})

    async def suppression_history(self, email: str) -> dict[str, Any]:
        """Whether an address is suppressed now, and every change of its entry."""
        path = f"/suppressions/{quote(email, safe='@')}/history"
        answer: dict[str, Any] = await self._call("GET", path)
        return answer

    async def _pages(
        self, path: str, key: str, after: str | None, limit: int, filters: Mapping[str, Filter]
    ) -> AsyncIterator[_wire.Page]:
        cursor = after
        while True:
            params = _wire.list_params(cursor, limit, filters)
            page = _wire.page_of(await self._call("GET", path, params=params), key)
            yield page
            if not page.has_more or page.next_cursor is None or page.next_cursor == cursor:
                return
            cursor = page.next_cursor

    async def _call(self, method: str, path: str, **options: Any) -> Any:
        attempt = 0
        while True:
            try:
                response = await self._http.request(method, path, **options)
            except httpx.TransportError as exc:
                if not self._retry.should_retry(attempt):
                    raise TransportError(f"{method} {path}: {exc!r}") from exc
                delay = self._retry.delay(attempt)
            else:
                if response.status_code not in RETRY_STATUSES or not self._retry.should_retry(
                    attempt
                ):
                    return _wire.decoded(response)
                delay = self._retry.delay(attempt, response.headers.get("retry-after"))
            attempt += 1
            await self._sleep(delay)
