"""HTTP routes of the simulator's event side.

Mailjet surface (behind the simulator's Basic auth):

- ``GET /v3/REST/messagehistory/{id}``: the message's events so far
  (``{Count, Data: [{EventAt, EventType, State, Useragent, UseragentID, Comment}], Total}``),
  404 for an unknown MessageID.

Control surface (no auth, loopback only):

- ``GET /_sim/events``: ``{"config": EventsConfig, "counts": {...}, "busy": bool}``.
- ``PUT /_sim/events``: replace the :class:`~mailer.simulator.events.EventsConfig`
  (omitted fields take their defaults); 400 on a bad value.
- ``GET /_sim/events/deliveries[?limit=N]``: the logged event POSTs, oldest first (the
  last ``N`` only with ``limit``), each with its body, attempts and outcome.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mailer.simulator.events import EventsConfig
from mailer.simulator.poster import EventPoster
from mailer.simulator.validation import rest_error

__all__ = ["event_routes"]

Handler = Callable[[Request], Awaitable[Response]]


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status, media_type="application/json")


def event_routes(poster: EventPoster, authed: Callable[[Handler], Handler]) -> list[Route]:
    """The routes above, bound to ``poster`` (and its state); ``authed`` adds Basic auth."""
    state = poster.state

    async def message_history(request: Request) -> Response:
        record = state.get(request.path_params["id"])
        if record is None:
            return _json(rest_error(404, "Object not found"), 404)
        rows = list(record.history)
        return _json({"Count": len(rows), "Data": rows, "Total": len(rows)})

    async def get_events(request: Request) -> Response:
        return _json(
            {
                "config": poster.config.to_json(),
                "counts": dict(state.event_counts),
                "busy": poster.busy,
            }
        )

    async def put_events(request: Request) -> Response:
        try:
            config = EventsConfig.from_json(orjson.loads(await request.body() or b"{}"))
        except (orjson.JSONDecodeError, ValueError, TypeError) as exc:
            return _json({"error": str(exc)}, 400)
        poster.configure(config)
        return _json(config.to_json())

    async def deliveries(request: Request) -> Response:
        rows = list(state.deliveries)
        limit = request.query_params.get("limit")
        if limit is not None:
            try:
                count = int(limit)
            except ValueError:
                return _json({"error": "limit must be an integer"}, 400)
            rows = rows[-count:] if count > 0 else []
        return _json({"Count": len(rows), "Data": [d.to_json() for d in rows]})

    return [
        Route("/v3/REST/messagehistory/{id:int}", authed(message_history), methods=["GET"]),
        Route("/_sim/events", get_events, methods=["GET"]),
        Route("/_sim/events", put_events, methods=["PUT"]),
        Route("/_sim/events/deliveries", deliveries, methods=["GET"]),
    ]
