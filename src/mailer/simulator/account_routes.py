"""HTTP routes of the simulator's account side: senders and sending domains.

Mailjet surface (behind the simulator's Basic auth), see :mod:`.senders` for what the
simulated account holds:

- ``GET /v3/REST/sender`` (filters ``Domain``, ``Email``, ``Status``, ``IsDomainSender``;
  ``Limit`` default 10, at most 1000; ``Offset``; ``countOnly``), ``GET /v3/REST/sender/{ID}``;
- ``GET /v3/REST/dns`` (``Limit``, ``Offset``), ``GET /v3/REST/dns/{ID or domain}``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mailer.simulator.senders import DomainRecord, SenderBook
from mailer.simulator.validation import rest_error

__all__ = ["account_routes"]

Handler = Callable[[Request], Awaitable[Response]]
_MAX_LIMIT = 1000
_TRUE = frozenset({"true", "1", "yes"})


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status, media_type="application/json")


def _listed(request: Request, rows: list[dict[str, Any]]) -> Response:
    q = request.query_params
    try:
        limit = min(int(q.get("Limit", "10")), _MAX_LIMIT)
        offset = int(q.get("Offset", "0"))
        if limit < 1 or offset < 0:
            raise ValueError("Limit must be >= 1 and Offset >= 0")
    except ValueError as exc:
        return _json(rest_error(400, f"Invalid query parameter: {exc}"), 400)
    if q.get("countOnly", "").lower() in _TRUE:
        return _json({"Count": len(rows), "Data": [], "Total": len(rows)})
    page = rows[offset : offset + limit]
    return _json({"Count": len(page), "Data": page, "Total": len(rows)})


def _not_found() -> Response:
    return _json(rest_error(404, "Object not found"), 404)


def _domain_of(email: str) -> str:
    return email.rpartition("@")[2] if "@" in email else ""


def account_routes(book: SenderBook, authed: Callable[[Handler], Handler]) -> list[Route]:
    """The routes above, bound to ``book``; ``authed`` adds Basic auth."""

    def senders_matching(request: Request) -> list[DomainRecord]:
        q = request.query_params
        named = [q.get("Domain", ""), _domain_of(q.get("Email", ""))]
        for domain in filter(None, named):
            book.lookup(domain)  # a filter names a domain: the account answers for it
        records = book.all()
        if q.get("Domain"):
            records = [r for r in records if r.domain == q["Domain"].lower()]
        if q.get("Email"):
            wanted = q["Email"].lower()
            records = [r for r in records if wanted in (f"*@{r.domain}", r.domain)]
        if q.get("Status"):
            records = [r for r in records if r.sender_status == q["Status"]]
        if q.get("IsDomainSender", "").lower() == "false":
            records = []  # the simulated account holds domain senders only
        return records

    async def list_senders(request: Request) -> Response:
        return _listed(request, [r.sender_row() for r in senders_matching(request)])

    async def get_sender(request: Request) -> Response:
        key = request.path_params["key"]
        record = (
            next((r for r in book.all() if r.sender_id == int(key)), None)
            if key.isdigit()
            else book.lookup(_domain_of(key))
        )
        if record is None:
            return _not_found()
        return _json({"Count": 1, "Data": [record.sender_row()], "Total": 1})

    async def list_dns(request: Request) -> Response:
        return _listed(request, [r.dns_row() for r in book.all()])

    async def get_dns(request: Request) -> Response:
        key = request.path_params["key"]
        record = book.by_id(int(key)) if key.isdigit() else book.lookup(key)
        if record is None:
            return _not_found()
        return _json({"Count": 1, "Data": [record.dns_row()], "Total": 1})

    return [
        Route("/v3/REST/sender", authed(list_senders), methods=["GET"]),
        Route("/v3/REST/sender/{key}", authed(get_sender), methods=["GET"]),
        Route("/v3/REST/dns", authed(list_dns), methods=["GET"]),
        Route("/v3/REST/dns/{key}", authed(get_dns), methods=["GET"]),
    ]
