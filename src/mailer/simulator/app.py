"""HTTP routes of the Mailjet simulator (Starlette).

Mailjet surface, behind HTTP Basic auth: ``POST /v3.1/send``, ``GET /v3/REST/message``
(``CustomID``, ``ContactAlt``, ``FromTS``, ``ToTS``, ``Show*``, ``Limit``, ``Offset``,
``countOnly``), ``GET /v3/REST/message/{id}`` and ``/v3/REST/eventcallbackurl[/{id}]``
(GET, POST, PUT, DELETE); senders and domains (``/v3/REST/sender``, ``/v3/REST/dns``)
are in :mod:`.account_routes`.

Control surface, without auth (the simulator only listens on loopback):

- ``GET /_sim/messages[?custom_id=]``: accepted recipient-level messages.
- ``GET /_sim/stats``: counters (accepted, calls, faults, duplicates, by_custom_id ...).
- ``GET /_sim/faults``, ``PUT /_sim/faults``: read / replace the :class:`FaultConfig`.
- ``POST /_sim/reset``: forget messages, calls, counters and callback URLs (faults stay).

The event side (``/v3/REST/messagehistory``, ``/_sim/events``) is in :mod:`.event_routes`;
the app's lifespan (standalone) or :class:`~mailer.simulator.server.SimulatorServer`
(in-process) starts and stops its :class:`~mailer.simulator.poster.EventPoster`.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from mailer.simulator.account_routes import account_routes
from mailer.simulator.event_routes import event_routes
from mailer.simulator.events import EventsConfig
from mailer.simulator.faults import (
    ERROR_500_BODY,
    HTML_429_BODY,
    DroppedResponse,
    Fault,
    FaultConfig,
    FaultInjector,
    hang,
    hide_dropped_connections,
)
from mailer.simulator.poster import EventPoster
from mailer.simulator.senders import SenderBook
from mailer.simulator.state import SimulatorState
from mailer.simulator.validation import (
    UNAUTHORIZED_BODY,
    RequestFailure,
    SendRequest,
    check_callback,
    check_message,
    check_request,
    parse_send,
    rest_error,
    unique_recipients,
)

__all__ = ["SimulatorApp"]

_MAX_LIMIT = 1000
_TRUE = frozenset({"true", "1", "yes"})
Handler = Callable[[Request], Awaitable[Response]]


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status, media_type="application/json")


def _rest_list(rows: list[dict[str, Any]], total: int, status: int = 200) -> Response:
    return _json({"Count": len(rows), "Data": rows, "Total": total}, status)


def _flag(request: Request, name: str) -> bool:
    return request.query_params.get(name, "").lower() in _TRUE


def _timestamp(value: str) -> float:
    """A Unix timestamp, or an ISO 8601 date-time (UTC unless it says otherwise)."""
    try:
        return float(value)
    except ValueError:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def _page(request: Request) -> tuple[int, int]:
    """REST v3 ``Limit`` (default 10, at most 1000) and ``Offset``; ValueError if invalid."""
    limit = int(request.query_params.get("Limit", "10"))
    offset = int(request.query_params.get("Offset", "0"))
    if limit < 1 or offset < 0:
        raise ValueError("Limit must be >= 1 and Offset >= 0")
    return min(limit, _MAX_LIMIT), offset


class SimulatorApp:
    """Request handlers bound to one :class:`SimulatorState` and :class:`FaultInjector`."""

    def __init__(
        self,
        state: SimulatorState,
        injector: FaultInjector,
        *,
        api_key: str,
        secret_key: str,
        events: EventsConfig | None = None,
    ) -> None:
        self.state = state
        self.injector = injector
        self.events = EventPoster(state, events)
        self.senders = SenderBook()
        state.reset_listeners.append(self.senders.reset)
        token = base64.b64encode(f"{api_key}:{secret_key}".encode()).decode("ascii")
        self._expected_auth = f"Basic {token}".encode("latin-1")
        self.closing = asyncio.Event()  # set on shutdown: hung requests end at once
        hide_dropped_connections()

    def build(self) -> Starlette:
        """The Starlette application."""
        cb = "/v3/REST/eventcallbackurl"

        async def not_found(request: Request, exc: Exception) -> Response:
            return _json(rest_error(404, "Object not found"), 404)

        async def not_allowed(request: Request, exc: Exception) -> Response:
            return _json(rest_error(405, "Method not allowed"), 405)

        routes = [
            Route("/v3.1/send", self._authed(self.send), methods=["POST"]),
            Route("/v3/REST/message", self._authed(self.list_messages), methods=["GET"]),
            Route("/v3/REST/message/{id:int}", self._authed(self.get_message), methods=["GET"]),
            Route(cb, self._authed(self.list_callbacks), methods=["GET"]),
            Route(cb, self._authed(self.create_callback), methods=["POST"]),
            Route(cb + "/{id:int}", self._authed(self.get_callback), methods=["GET"]),
            Route(cb + "/{id:int}", self._authed(self.update_callback), methods=["PUT"]),
            Route(cb + "/{id:int}", self._authed(self.delete_callback), methods=["DELETE"]),
            Route("/_sim/messages", self.sim_messages, methods=["GET"]),
            Route("/_sim/stats", self.sim_stats, methods=["GET"]),
            Route("/_sim/faults", self.sim_get_faults, methods=["GET"]),
            Route("/_sim/faults", self.sim_put_faults, methods=["PUT"]),
            Route("/_sim/reset", self.sim_reset, methods=["POST"]),
            *event_routes(self.events, self._authed),
            *account_routes(self.senders, self._authed),
        ]
        return Starlette(
            routes=routes,
            exception_handlers={404: not_found, 405: not_allowed},
            lifespan=lambda app: self.events.running(),
        )

    def _authed(self, handler: Handler) -> Handler:
        async def guarded(request: Request) -> Response:
            given = request.headers.get("authorization", "").encode("latin-1")
            if not hmac.compare_digest(given, self._expected_auth):
                return _json(UNAUTHORIZED_BODY, 401)
            return await handler(request)

        return guarded

    # -- POST /v3.1/send -------------------------------------------------------------------

    async def send(self, request: Request) -> Response:
        """Validate and accept a Send API v3.1 call, with fault injection."""
        try:
            parsed = parse_send(await request.body())
        except ClientDisconnect:
            return Response(status_code=400)
        if isinstance(parsed, SendRequest):
            self.state.record_call(parsed.recipients)
        fault = self.injector.draw()
        if fault is not None:
            self.state.faults[fault.value] += 1
        config = self.injector.config
        if config.latency_ms > 0:
            await asyncio.sleep(config.latency_ms / 1000)
        if fault is Fault.ERROR_500:
            return _json(ERROR_500_BODY, 500)
        if fault is Fault.HTML_429:
            headers = {}
            if config.retry_after is not None:
                headers["Retry-After"] = f"{config.retry_after:g}"
            return Response(HTML_429_BODY, 429, headers=headers, media_type="text/html")
        if fault is Fault.TIMEOUT:
            await hang(request.receive, config.hang_seconds, self.closing)
            return Response(b"", 504)
        if isinstance(parsed, RequestFailure):
            return _json(parsed.body, parsed.status)
        failure = check_request(parsed)
        if failure is not None:
            return _json(failure.body, failure.status)
        href = f"{request.url.scheme}://{request.headers.get('host', '127.0.0.1')}"
        body, status = self._process(parsed, href + "/v3/REST/message/")
        if fault is Fault.LOST_ANSWER:
            if config.lost_answer_mode == "drop":
                return DroppedResponse()
            return _json(ERROR_500_BODY, 500)
        return Response(body, status, media_type="application/json")

    def _process(self, request: SendRequest, href: str) -> tuple[bytes, int]:
        results: list[dict[str, Any]] = []
        all_ok = True
        if request.sandbox:
            self.state.sandbox_calls += 1
        for msg in request.messages:
            errors = check_message(msg)
            if errors:
                all_ok = False
                if not request.sandbox:
                    self.state.rejected_messages += 1
                results.append({"Status": "error", "Errors": errors})
                continue
            recipients = unique_recipients(msg)
            custom_id = msg.get("CustomID") or ""
            entry: dict[str, Any] = {"Status": "success", "CustomID": custom_id}
            by_kind: dict[str, list[dict[str, Any]]] = {"to": [], "cc": [], "bcc": []}
            if request.sandbox:
                for email, kind in recipients:
                    by_kind[kind].append(
                        {
                            "Email": email,
                            "MessageUUID": "",
                            "MessageID": 0,
                            "MessageHref": href + "0",
                        }
                    )
            else:
                sender = msg.get("From")
                if isinstance(sender, dict):
                    self.senders.note_sender(str(sender.get("Email", "")))
                records = self.state.accept(
                    recipients,
                    custom_id=custom_id,
                    payload=msg.get("EventPayload") or "",
                    subject=msg.get("Subject") or "",
                    from_email=sender.get("Email", "") if isinstance(sender, dict) else "",
                    campaign=msg.get("CustomCampaign") or "",
                )
                for r in records:
                    by_kind[r.kind].append(r.to_send_entry(href))
            entry["To"], entry["Cc"], entry["Bcc"] = by_kind["to"], by_kind["cc"], by_kind["bcc"]
            results.append(entry)
        return orjson.dumps({"Messages": results}), 200 if all_ok else 400

    # -- GET /v3/REST/message --------------------------------------------------------------

    async def list_messages(self, request: Request) -> Response:
        """Messages filtered by CustomID / ContactAlt / FromTS / ToTS, paged."""
        q = request.query_params
        try:
            limit, offset = _page(request)
            from_ts = _timestamp(q["FromTS"]) if q.get("FromTS") else None
            to_ts = _timestamp(q["ToTS"]) if q.get("ToTS") else None
        except ValueError as exc:
            return _json(rest_error(400, f"Invalid query parameter: {exc}"), 400)
        rows = self.state.find(
            custom_id=q.get("CustomID") or None,
            email=q.get("ContactAlt") or None,
            from_ts=from_ts,
            to_ts=to_ts,
        )
        rows = [r for r in rows if self._indexed(r.accepted_at)]
        if _flag(request, "countOnly"):
            return _json({"Count": len(rows), "Data": [], "Total": len(rows)})
        show = {
            "show_custom_id": _flag(request, "ShowCustomID"),
            "show_contact_alt": _flag(request, "ShowContactAlt"),
            "show_subject": _flag(request, "ShowSubject"),
        }
        page = [r.to_rest(**show) for r in rows[offset : offset + limit]]
        return _rest_list(page, len(rows))

    async def get_message(self, request: Request) -> Response:
        """One message by MessageID, or 404."""
        record = self.state.get(request.path_params["id"])
        if record is None or not self._indexed(record.accepted_at):
            return _json(rest_error(404, "Object not found"), 404)
        row = record.to_rest(show_custom_id=True, show_contact_alt=True, show_subject=True)
        return _rest_list([row], 1)

    def _indexed(self, accepted_at: float) -> bool:
        """Whether a message accepted then is visible to lookups yet (``lookup_lag_ms``)."""
        lag = self.injector.config.lookup_lag_ms / 1000
        return lag <= 0 or accepted_at <= time.time() - lag

    # -- /v3/REST/eventcallbackurl ---------------------------------------------------------

    async def list_callbacks(self, request: Request) -> Response:
        """Callback URLs filtered by EventType / Status / Version / Backup, paged (Limit 10)."""
        q = request.query_params
        try:
            limit, offset = _page(request)
        except ValueError as exc:
            return _json(rest_error(400, f"Invalid query parameter: {exc}"), 400)
        rows = sorted(self.state.callbacks.values(), key=lambda r: r.id)
        if "EventType" in q:
            rows = [r for r in rows if r.event_type == q["EventType"]]
        if "Status" in q:
            rows = [r for r in rows if r.status == q["Status"]]
        if "Version" in q:
            rows = [r for r in rows if str(r.version) == q["Version"]]
        if "Backup" in q:
            rows = [r for r in rows if r.is_backup == (q["Backup"].lower() in _TRUE)]
        if _flag(request, "countOnly"):
            return _json({"Count": len(rows), "Data": [], "Total": len(rows)})
        return _rest_list([r.to_rest() for r in rows[offset : offset + limit]], len(rows))

    async def get_callback(self, request: Request) -> Response:
        """One callback URL, or 404."""
        record = self.state.callbacks.get(request.path_params["id"])
        if record is None:
            return _json(rest_error(404, "Object not found"), 404)
        return _rest_list([record.to_rest()], 1)

    async def create_callback(self, request: Request) -> Response:
        """Register a callback URL: 201, or 400 when the type/backup slot is taken."""
        fields = await _callback_fields(request, creating=True)
        if isinstance(fields, Response):
            return fields
        if self.state.find_callback(fields["EventType"], fields["IsBackup"]) is not None:
            return _json(rest_error(400, _duplicate(fields["EventType"])), 400)
        record = self.state.add_callback(
            event_type=fields["EventType"],
            url=fields["Url"],
            status=fields["Status"],
            is_backup=fields["IsBackup"],
            version=fields["Version"],
        )
        return _rest_list([record.to_rest()], 1, 201)

    async def update_callback(self, request: Request) -> Response:
        """Partial update: 200 with the record, 304 if nothing changed, 404, or 400."""
        record = self.state.callbacks.get(request.path_params["id"])
        if record is None:
            return _json(rest_error(404, "Object not found"), 404)
        fields = await _callback_fields(request, creating=False)
        if isinstance(fields, Response):
            return fields
        current = record.to_rest()
        changes = {k: v for k, v in fields.items() if current[k] != v}
        if not changes:
            return Response(status_code=304)
        event_type = changes.get("EventType", record.event_type)
        is_backup = changes.get("IsBackup", record.is_backup)
        other = self.state.find_callback(event_type, is_backup)
        if other is not None and other.id != record.id:
            return _json(rest_error(400, _duplicate(event_type)), 400)
        record.event_type = event_type
        record.is_backup = is_backup
        record.url = changes.get("Url", record.url)
        record.status = changes.get("Status", record.status)
        record.version = changes.get("Version", record.version)
        return _rest_list([record.to_rest()], 1)

    async def delete_callback(self, request: Request) -> Response:
        """Delete a callback URL: 204, or 404."""
        if self.state.callbacks.pop(request.path_params["id"], None) is None:
            return _json(rest_error(404, "Object not found"), 404)
        return Response(status_code=204)

    # -- /_sim control API -----------------------------------------------------------------

    async def sim_messages(self, request: Request) -> Response:
        """Accepted messages, optionally only those with ``?custom_id=``."""
        custom_id = request.query_params.get("custom_id")
        rows = self.state.find(custom_id=custom_id)
        return _json({"Count": len(rows), "Data": [r.to_json() for r in rows]})

    async def sim_stats(self, request: Request) -> Response:
        """Counters: accepted, calls, faults, per-CustomID send counts."""
        return _json(self.state.stats())

    async def sim_get_faults(self, request: Request) -> Response:
        """The current fault settings."""
        return _json(self.injector.config.to_json())

    async def sim_put_faults(self, request: Request) -> Response:
        """Replace the fault settings (omitted fields take their defaults, i.e. off)."""
        try:
            config = FaultConfig.from_json(orjson.loads(await request.body() or b"{}"))
        except (orjson.JSONDecodeError, ValueError, TypeError) as exc:
            return _json({"error": str(exc)}, 400)
        self.injector.configure(config)
        return _json(config.to_json())

    async def sim_reset(self, request: Request) -> Response:
        """Forget accepted messages, calls, counters, callback URLs and senders (faults stay)."""
        self.state.reset()
        return _json({"reset": True})


def _duplicate(event_type: str) -> str:
    return (
        f'MJ18 A Eventcallbackurl resource with value "{event_type}" for EventType already exists.'
    )


async def _callback_fields(request: Request, *, creating: bool) -> dict[str, Any] | Response:
    """An eventcallbackurl body's checked fields, or the 400 Mailjet answers for it."""
    try:
        data = orjson.loads(await request.body())
    except (orjson.JSONDecodeError, ClientDisconnect):
        return _json(rest_error(400, "Malformed JSON"), 400)
    fields = check_callback(data, creating=creating)
    if isinstance(fields, str):
        return _json(rest_error(400, fields), 400)
    return fields
