"""The synchronous client."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import httpx

from mailer_client import _wire
from mailer_client.errors import TransportError
from mailer_client.retry import RETRY_STATUSES, RetryPolicy

__all__ = ["Client"]

Filter = str | int | datetime | Iterable[str] | None


class Client:
    """A Mailer API client for one app (its API key); thread-safe, keeps connections open.

    Use it as a context manager, or call `close()`. Every send carries an Idempotency-Key
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
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers=_wire.auth_headers(api_key),
            timeout=timeout,
            transport=transport,
        )
        self._retry = retry or RetryPolicy()
        self._sleep = sleep

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the pooled connections."""
        self._http.close()

    def send(
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
        answer = self._call("POST", "/queue", json=body, headers={"Idempotency-Key": key})
        return _wire.job_id_of(answer)

    def send_batch(
        self, emails: Sequence[Mapping[str, Any]], *, idempotency_key: str | None = None
    ) -> list[str]:
        """Queue up to 500 emails all-or-nothing; return their job ids in order."""
        key = idempotency_key or _wire.new_idempotency_key()
        answer = self._call(
            "POST",
            "/queue/batch",
            json=_wire.batch_body(emails),
            headers={"Idempotency-Key": key},
        )
        return _wire.job_ids_of(answer)

    def cancel(self, job_id: str) -> dict[str, Any]:
        """Cancel a scheduled or queued job (`ConflictError` when it is too late)."""
        answer: dict[str, Any] = self._call("POST", f"/jobs/{quote(job_id, safe='')}/cancel")
        return answer

    def reschedule(self, job_id: str, send_at: datetime) -> dict[str, Any]:
        """Move a scheduled job to `send_at` (`ConflictError` unless still scheduled)."""
        path = f"/jobs/{quote(job_id, safe='')}"
        answer: dict[str, Any] = self._call("PATCH", path, json={"send_at": send_at.isoformat()})
        return answer

    def retry(self, job_id: str) -> dict[str, Any]:
        """Send a job whose recipients failed again (same job id, history kept)."""
        answer: dict[str, Any] = self._call("POST", f"/jobs/{quote(job_id, safe='')}/retry")
        return answer

    def status(self, job_id: str) -> dict[str, Any]:
        """The job's status document (recipients, attempts, events)."""
        answer: dict[str, Any] = self._call("GET", f"/status/{quote(job_id, safe='')}")
        return answer

    def feed_pages(
        self,
        *,
        after: str | None = None,
        limit: int = 100,
        types: Iterable[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Iterator[_wire.Page]:
        """The app's events page by page, from `after`, until caught up; each page's
        `next_cursor` is where to resume later."""
        filters = {"type": types, "since": since, "until": until}
        return self._pages("/feed", "events", after, limit, filters)

    def feed(
        self,
        *,
        after: str | None = None,
        limit: int = 100,
        types: Iterable[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every event of the app from `after` on, oldest first, until caught up."""
        for page in self.feed_pages(
            after=after, limit=limit, types=types, since=since, until=until
        ):
            yield from page.items

    def jobs_pages(
        self, *, after: str | None = None, limit: int = 100, **filters: Filter
    ) -> Iterator[_wire.Page]:
        """The app's jobs page by page (`GET /jobs`; filters as query parameters)."""
        return self._pages("/jobs", "jobs", after, limit, filters)

    def jobs(
        self, *, after: str | None = None, limit: int = 100, **filters: Filter
    ) -> Iterator[dict[str, Any]]:
        """Every job of the app matching `filters`, from `after` on."""
        for page in self.jobs_pages(after=after, limit=limit, **filters):
            yield from page.items

    def suppressions(self, *, limit: int = 100) -> Iterator[dict[str, Any]]:
        """Every address on the app's suppression list, in address order."""
        for page in self._pages("/suppressions", "suppressions", None, limit, {}):
            yield from page.items

    def suppress(self, email: str, reason: str | None = None) -> dict[str, Any]:
        """Put an address on the app's suppression list."""
        body = {"email": email} if reason is None else {"email": email, "reason": reason}
        answer: dict[str, Any] = self._call("POST", "/suppressions", json=body)
        return answer

    def unsuppress(self, email: str, reason: str) -> None:
        """Take an address off the app's suppression list; ``reason`` (required) is kept in
        the address's history."""
        path = f"/suppressions/{quote(email, safe='@')}"
        self._call("DELETE", path, params={"reason": reason})

    def suppression_history(self, email: str) -> dict[str, Any]:
        """Whether an address is suppressed now, and every change of its entry."""
        path = f"/suppressions/{quote(email, safe='@')}/history"
        answer: dict[str, Any] = self._call("GET", path)
        return answer

    def _pages(
        self, path: str, key: str, after: str | None, limit: int, filters: Mapping[str, Filter]
    ) -> Iterator[_wire.Page]:
        cursor = after
        while True:
            params = _wire.list_params(cursor, limit, filters)
            page = _wire.page_of(self._call("GET", path, params=params), key)
            yield page
            if not page.has_more or page.next_cursor is None or page.next_cursor == cursor:
                return
            cursor = page.next_cursor

    def _call(self, method: str, path: str, **options: Any) -> Any:
        attempt = 0
        while True:
            try:
                response = self._http.request(method, path, **options)
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
            self._sleep(delay)
