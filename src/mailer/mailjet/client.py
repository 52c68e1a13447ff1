"""Async Mailjet client: Send API v3.1, message lookup and event callback registration.

The client never retries: a send may have been accepted even when its answer is lost, so
retry and reconciliation belong to the caller (see :mod:`mailer.mailjet.errors`).
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import aiohttp
import orjson

from mailer.mailjet.errors import (
    MailjetConnectionError,
    MailjetError,
    MailjetTimeout,
    MailjetUnexpectedResponse,
    error_from_response,
)
from mailer.mailjet.models import (
    DomainDns,
    EventCallback,
    LookedUpMessage,
    MailjetSender,
    MessageEvent,
    ResponseShapeError,
    SendResponse,
    parse_domain_dns,
    parse_event_callback,
    parse_looked_up_message,
    parse_message_event,
    parse_send_results,
    parse_sender,
)

__all__ = ["DEFAULT_MAX_CONNECTIONS", "EVENT_TYPES", "ClientTimeouts", "MailjetClient"]

DEFAULT_MAX_CONNECTIONS = 100
REST_PAGE_LIMIT = 1000  # REST v3 maximum; its default of 10 silently truncates lists
EVENT_TYPES = frozenset({"sent", "open", "click", "bounce", "spam", "blocked", "unsub"})

_SEND_PATH = "/v3.1/send"
_MESSAGE_PATH = "/v3/REST/message"
_CALLBACK_PATH = "/v3/REST/eventcallbackurl"
_HISTORY_PATH = "/v3/REST/messagehistory"
_SENDER_PATH = "/v3/REST/sender"
_DNS_PATH = "/v3/REST/dns"


@dataclass(frozen=True, slots=True)
class ClientTimeouts:
    """Timeouts in seconds for one HTTP exchange with Mailjet.

    ``connect`` bounds opening the TCP/TLS connection; ``total`` bounds the whole exchange,
    including waiting for a free pooled connection. ``keepalive`` closes pooled connections
    idle that long, before a server would, so a send rarely lands on a connection the server
    has just closed (that would make its outcome unknown).
    """

    connect: float = 5.0
    total: float = 30.0
    keepalive: float = 10.0

    def __post_init__(self) -> None:
        for name in ("connect", "total", "keepalive"):
            if getattr(self, name) <= 0:
                raise ValueError(f"ClientTimeouts.{name} must be > 0")


def _unix(when: datetime, *, up: bool = False) -> str:
    """Unix seconds (Mailjet's FromTS/ToTS); ``up``: the next whole second, so a window's
    end holds everything of its last second."""
    seconds = (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
    return str(math.ceil(seconds) if up else math.floor(seconds))


def _basic_auth(login: str, password: str) -> str:
    token = base64.b64encode(f"{login}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


def _rest_list(data: Any) -> tuple[list[Any], int]:
    if not isinstance(data, dict) or not isinstance(data.get("Data"), list):
        raise ResponseShapeError("expected a REST v3 list {Count, Data, Total}")
    total = data.get("Total")
    rows: list[Any] = data["Data"]
    return rows, total if type(total) is int else len(rows)


class MailjetClient:
    """Async client for Mailjet's Send API v3.1 and the REST v3 resources the mailer uses.

    Use as ``async with MailjetClient(url, key, secret) as client: ...`` or call
    :meth:`aclose`. One pooled ``aiohttp.ClientSession`` serves all calls; pass ``session`` to
    share one (the client then leaves it open). Every failure raises a
    :class:`~mailer.mailjet.errors.MailjetError` subclass.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        secret_key: str,
        *,
        timeout: ClientTimeouts = ClientTimeouts(),
        session: aiohttp.ClientSession | None = None,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        if max_connections < 1:
            raise ValueError("max_connections must be >= 1")
        self._base_url = base_url.rstrip("/")
        self._timeouts = timeout
        self._aio_timeout = aiohttp.ClientTimeout(total=timeout.total, sock_connect=timeout.connect)
        self._headers = {
            "Authorization": _basic_auth(api_key, secret_key),
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        self._session = session
        self._owns_session = session is None
        self._max_connections = max_connections
        self._closed = False

    @property
    def base_url(self) -> str:
        """The API root this client talks to, without a trailing slash."""
        return self._base_url

    async def __aenter__(self) -> Self:
        self._get_session()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the pooled connections (only if this client created the session)."""
        self._closed = True
        if self._owns_session and self._session is not None:
            await self._session.close()
        self._session = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("MailjetClient is closed")
        if self._session is None:
            # Created lazily: aiohttp wants a running event loop at construction.
            connector = aiohttp.TCPConnector(
                limit=self._max_connections,
                limit_per_host=0,
                keepalive_timeout=self._timeouts.keepalive,
                ttl_dns_cache=300,
            )
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        payload: Any = None,
    ) -> tuple[int, Mapping[str, str], bytes]:
        """One HTTP exchange; every transport failure becomes a MailjetError."""
        session = self._get_session()
        data = orjson.dumps(payload) if payload is not None else None
        url = self._base_url + path
        try:
            async with session.request(
                method,
                url,
                params=params,
                data=data,
                headers=self._headers,
                timeout=self._aio_timeout,
                allow_redirects=False,
                raise_for_status=False,  # even if a shared session says otherwise
            ) as response:
                body = await response.read()
                return response.status, response.headers, body
        except aiohttp.ConnectionTimeoutError as exc:
            raise MailjetConnectionError(
                f"{method} {path}: connect timed out", outcome_unknown=False
            ) from exc
        except TimeoutError as exc:  # aiohttp's total timeout and asyncio's are TimeoutError
            raise MailjetTimeout(
                f"{method} {path}: no answer within {self._timeouts.total}s"
            ) from exc
        except aiohttp.ClientConnectorCertificateError as exc:
            raise MailjetConnectionError(
                f"{method} {path}: TLS certificate error: {exc}",
                retryable=False,
                outcome_unknown=False,
            ) from exc
        except aiohttp.ClientConnectorError as exc:
            raise MailjetConnectionError(
                f"{method} {path}: cannot connect: {exc}", outcome_unknown=False
            ) from exc
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, OSError) as exc:
            raise MailjetConnectionError(
                f"{method} {path}: connection lost: {exc!r}", outcome_unknown=True
            ) from exc
        except aiohttp.InvalidURL as exc:
            raise MailjetError(f"{method} {path}: invalid URL: {exc}") from exc
        except aiohttp.ClientResponseError as exc:
            raise MailjetUnexpectedResponse(
                f"{method} {path}: malformed HTTP answer: {exc}", status=exc.status or None
            ) from exc
        except aiohttp.ClientError as exc:
            raise MailjetError(
                f"{method} {path}: {exc!r}", retryable=True, outcome_unknown=True
            ) from exc

    async def _rest(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        payload: Any = None,
        ok: tuple[int, ...] = (200,),
    ) -> tuple[int, Any]:
        status, headers, body = await self._request(method, path, params=params, payload=payload)
        if status not in ok:
            raise error_from_response(status, body, headers)
        if not body:
            return status, None
        try:
            return status, orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise MailjetUnexpectedResponse(
                f"{method} {path}: HTTP {status} body is not JSON", status=status
            ) from exc

    async def _rest_all(self, path: str, params: dict[str, str]) -> list[Any]:
        """Fetch every page of a REST v3 list."""
        rows: list[Any] = []
        offset = 0
        while True:
            page_params = {**params, "Limit": str(REST_PAGE_LIMIT), "Offset": str(offset)}
            _, data = await self._rest("GET", path, params=page_params)
            try:
                page, total = _rest_list(data)
            except ResponseShapeError as exc:
                raise MailjetUnexpectedResponse(f"GET {path}: {exc}", status=200) from exc
            rows.extend(page)
            offset += len(page)
            if not page or len(page) < REST_PAGE_LIMIT or offset >= total:
                return rows

    # -- Send API v3.1 ---------------------------------------------------------------------

    async def send(self, messages: list[dict[str, Any]], *, sandbox: bool = False) -> SendResponse:
        """POST ``/v3.1/send`` once (no retry) and return one result per message, by index.

        A body with a ``Messages`` array is returned whatever the HTTP status (a mixed batch
        comes with 400). Anything else raises a :class:`MailjetError` subclass.
        """
        payload: dict[str, Any] = {"Messages": messages}
        if sandbox:
            payload["SandboxMode"] = True
        status, headers, body = await self._request("POST", _SEND_PATH, payload=payload)
        data: Any = None
        if body:
            try:
                data = orjson.loads(body)
            except orjson.JSONDecodeError:  # HTML from a proxy, a 429 page ...
                data = None
        entries = data.get("Messages") if isinstance(data, dict) else None
        if not isinstance(entries, list):
            raise error_from_response(status, body, headers)
        try:
            results = parse_send_results(entries)
        except ResponseShapeError as exc:
            raise MailjetUnexpectedResponse(
                f"HTTP {status}: {exc}", status=status, body=body[:300].decode("utf-8", "replace")
            ) from exc
        if len(results) != len(messages):
            raise MailjetUnexpectedResponse(
                f"HTTP {status}: {len(results)} results for {len(messages)} messages",
                status=status,
                body=body[:300].decode("utf-8", "replace"),
            )
        return SendResponse(http_status=status, results=results)

    # -- REST v3: message lookup -----------------------------------------------------------

    async def find_messages_by_custom_id(
        self, custom_id: str, *, since: datetime | None = None
    ) -> list[LookedUpMessage]:
        """Messages Mailjet holds for ``custom_id`` (one row per recipient; reused ids add more).

        ``since`` (a naive datetime counts as UTC) narrows the search with ``FromTS``. An empty
        list means "probably not accepted": Mailjet's index may lag behind a fresh send.
        """
        params = {"CustomID": custom_id, "ShowCustomID": "true", "ShowContactAlt": "true"}
        if since is not None:
            if since.tzinfo is None:
                since = since.replace(tzinfo=UTC)
            params["FromTS"] = str(int(since.timestamp()))
        rows = await self._rest_all(_MESSAGE_PATH, params)
        try:
            return [parse_looked_up_message(row) for row in rows]
        except ResponseShapeError as exc:
            raise MailjetUnexpectedResponse(f"GET {_MESSAGE_PATH}: {exc}", status=200) from exc

    async def list_messages_page(
        self, *, since: datetime, until: datetime, offset: int, limit: int = REST_PAGE_LIMIT
    ) -> tuple[list[LookedUpMessage], int]:
        """One page of the messages Mailjet sent between ``since`` and ``until`` (inclusive,
        by arrival; naive datetimes count as UTC), with CustomID and address; and the total
        count of the window. One call: paging is left to the caller (backfill is resumable)."""
        params = {
            "FromTS": _unix(since),
            "ToTS": _unix(until, up=True),
            "ShowCustomID": "true",
            "ShowContactAlt": "true",
            "Limit": str(min(limit, REST_PAGE_LIMIT)),
            "Offset": str(offset),
        }
        _, data = await self._rest("GET", _MESSAGE_PATH, params=params)
        try:
            rows, total = _rest_list(data)
            return [parse_looked_up_message(row) for row in rows], total
        except ResponseShapeError as exc:
            raise MailjetUnexpectedResponse(f"GET {_MESSAGE_PATH}: {exc}", status=200) from exc

    async def message_history(self, message_id: int) -> list[MessageEvent]:
        """The events of one message (``/v3/REST/messagehistory/{id}``), oldest first;
        :class:`MailjetNotFound` for a MessageID Mailjet does not know."""
        path = f"{_HISTORY_PATH}/{int(message_id)}"
        rows = await self._rest_all(path, {})
        try:
            events = [parse_message_event(row) for row in rows]
        except ResponseShapeError as exc:
            raise MailjetUnexpectedResponse(f"GET {path}: {exc}", status=200) from exc
        return sorted(events, key=lambda e: e.event_at)

    # -- REST v3: senders and sending domains ----------------------------------------------

    async def list_senders(self, *, domain: str | None = None) -> list[MailjetSender]:
        """The account's sender addresses and domains (all pages), of ``domain`` only if given."""
        rows = await self._rest_all(_SENDER_PATH, {"Domain": domain} if domain else {})
        try:
            return [parse_sender(row) for row in rows]
        except ResponseShapeError as exc:
            raise MailjetUnexpectedResponse(f"GET {_SENDER_PATH}: {exc}", status=200) from exc

    async def domain_dns(self, domain: str) -> DomainDns:
        """Mailjet's SPF/DKIM check of a sending domain; :class:`MailjetNotFound` when the
        account does not hold the domain."""
        path = f"{_DNS_PATH}/{quote(domain, safe='')}"
        _, data = await self._rest("GET", path)
        try:
            rows, _ = _rest_list(data)
            if len(rows) != 1:
                raise ResponseShapeError("expected one record")
            return parse_domain_dns(rows[0])
        except ResponseShapeError as exc:
            raise MailjetUnexpectedResponse(f"GET {path}: {exc}", status=200) from exc

    # -- REST v3: event callback URLs ------------------------------------------------------

    def _callbacks(self, data: Any, what: str) -> list[EventCallback]:
        try:
            rows, _ = _rest_list(data)
            return [parse_event_callback(row) for row in rows]
        except ResponseShapeError as exc:
            raise MailjetUnexpectedResponse(f"{what}: {exc}", status=None) from exc

    def _one_callback(self, data: Any, what: str) -> EventCallback:
        callbacks = self._callbacks(data, what)
        if len(callbacks) != 1:
            raise MailjetUnexpectedResponse(f"{what}: expected one record", status=None)
        return callbacks[0]

    async def list_event_callbacks(self) -> list[EventCallback]:
        """Every registered event callback URL (all pages; never the default 10 only)."""
        rows = await self._rest_all(_CALLBACK_PATH, {})
        return self._callbacks({"Data": rows}, f"GET {_CALLBACK_PATH}")

    async def get_event_callback(self, callback_id: int) -> EventCallback:
        """One event callback URL; :class:`MailjetNotFound` if it does not exist."""
        path = f"{_CALLBACK_PATH}/{int(callback_id)}"
        _, data = await self._rest("GET", path)
        return self._one_callback(data, f"GET {path}")

    async def create_event_callback(
        self, event_type: str, url: str, *, version: int = 2, is_backup: bool = False
    ) -> EventCallback:
        """Register ``url`` for one event type (Mailjet refuses a second one per type/backup)."""
        if event_type not in EVENT_TYPES:
            raise ValueError(f"event_type must be one of {sorted(EVENT_TYPES)}")
        payload = {
            "EventType": event_type,
            "Url": url,
            "Version": version,
            "IsBackup": is_backup,
            "Status": "alive",
        }
        _, data = await self._rest("POST", _CALLBACK_PATH, payload=payload, ok=(200, 201))
        return self._one_callback(data, f"POST {_CALLBACK_PATH}")

    async def update_event_callback(
        self,
        callback_id: int,
        *,
        url: str | None = None,
        status: str | None = None,
        version: int | None = None,
    ) -> EventCallback:
        """Change the given fields only (REST v3 PUT is partial) and return the record."""
        changes: dict[str, Any] = {}
        if url is not None:
            changes["Url"] = url
        if status is not None:
            changes["Status"] = status
        if version is not None:
            changes["Version"] = version
        if not changes:
            raise ValueError("nothing to update")
        path = f"{_CALLBACK_PATH}/{int(callback_id)}"
        code, data = await self._rest("PUT", path, payload=changes, ok=(200, 304))
        if code == 304 or data is None:  # nothing changed: 304 carries no body
            return await self.get_event_callback(callback_id)
        return self._one_callback(data, f"PUT {path}")

    async def delete_event_callback(self, callback_id: int) -> None:
        """Delete one event callback URL; :class:`MailjetNotFound` if it does not exist."""
        await self._rest("DELETE", f"{_CALLBACK_PATH}/{int(callback_id)}", ok=(200, 204))
