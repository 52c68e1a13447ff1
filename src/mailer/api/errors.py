"""Every error answers JSON that says what is wrong: `{"error": code, "message": ..., ...}`.

Validation errors name each bad field; an unreachable database answers 503 with
`Retry-After` (and `"outcome": "unknown"` when a write may or may not have committed);
unexpected errors answer a bare 500 (the details go to the log, never to the client);
oversized bodies are refused before they are read whole.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mailer.api.responses import Json
from mailer.delivery.enqueue import CommitOutcomeUnknown
from mailer.logs import describe
from mailer.metrics import count
from mailer.ops.outage import Outage, is_unavailable

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error with an HTTP status, a stable code and a human message."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.headers = headers
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    """The JSON body of an error answer."""
    return {"error": code, "message": message, **extra}


def _field_path(loc: tuple[Any, ...]) -> str:
    parts = [p for p in loc if p not in ("body", "query", "path", "header")]
    path = ""
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += ("." if path else "") + str(part)
    return path or "body"


def validation_details(errors: list[Any]) -> list[dict[str, str]]:
    """Pydantic errors as `[{"field": "to[0].email", "message": ...}]`."""
    details = []
    for err in errors:
        message = str(err.get("msg", "invalid"))
        message = message.removeprefix("Value error, ")
        details.append({"field": _field_path(tuple(err.get("loc", ()))), "message": message})
    return details


def invalid_request(errors: list[Any]) -> ApiError:
    """The 422 for pydantic's validation errors, naming each bad field."""
    return invalid_fields(validation_details(errors))


def invalid_fields(details: list[dict[str, str]]) -> ApiError:
    """The 422 for `[{"field": ..., "message": ...}]` details."""
    fields = ", ".join(d["field"] for d in details)
    return ApiError(422, "invalid_request", f"invalid fields: {fields}", details=details)


def install(app: FastAPI) -> None:
    """Register the JSON error handlers on an app."""

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> Json:
        return Json(error_body(exc.code, exc.message, **exc.extra), exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Json:
        return await _api_error(request, invalid_request(list(exc.errors())))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Json:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        headers = exc.headers
        if exc.status_code == 405:
            # Starlette names the methods of the first route of the path only; each
            # method of a path is its own route here.
            headers = {**(headers or {}), "Allow": ", ".join(_methods_of(request))}
        return Json(error_body(code, str(exc.detail)), exc.status_code, headers=headers)

    @app.exception_handler(asyncpg.CharacterNotInRepertoireError)
    @app.exception_handler(asyncpg.UntranslatableCharacterError)
    async def _unstorable(_: Request, exc: Exception) -> Json:
        # A last guard: input checks refuse NULs before they reach a query.
        message = "the request holds text PostgreSQL cannot store (a NUL character)"
        return Json(error_body("invalid_request", message), 422)


# Seconds a client is asked to wait before retrying while the database is unavailable.
RETRY_AFTER = "5"


def unavailable_answer(exc: BaseException, outage: Outage | None) -> Json:
    """The 503 for a request that failed because the database is unavailable."""
    if outage is not None:
        cause = exc.__cause__ if isinstance(exc, CommitOutcomeUnknown) else None
        outage.failed(cause or exc)
    headers = {"Retry-After": RETRY_AFTER}
    if isinstance(exc, CommitOutcomeUnknown):
        body = error_body(
            "unavailable",
            "the database connection broke while the email was being stored: it may or may "
            "not have been; retry with the same Idempotency-Key",
            outcome="unknown",
        )
    else:
        body = error_body("unavailable", "the database is unavailable; try again shortly")
    return Json(body, 503, headers=headers)


class ErrorBoundary:
    """The last word on exceptions no handler took: 503 when the database is unavailable,
    else a bare 500 logged as one line (the traceback only at debug). Every answer is
    counted in the metrics here (route template, method, status, duration).

    Unlike Starlette's own handler for `Exception`, this one does not re-raise once it has
    answered, so the server neither logs the error a second time nor drops the client's
    keep-alive connection.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 0  # until the answer starts
        began = time.perf_counter()

        async def send_tracked(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_tracked)
        except Exception as exc:
            if status:
                raise
            answer = self.answer(scope, exc)
            status = answer.status_code
            await answer(scope, receive, send)
        finally:
            # Counted here, where every answer passes (one layer less than a middleware of
            # its own on the hot path); no answer at all counts as 500.
            count.http_answer(scope, status or 500, time.perf_counter() - began)

    @staticmethod
    def answer(scope: Scope, exc: Exception) -> Json:
        """The answer to an exception that no handler took: 503 when the database is
        unavailable (the outage noted), else a bare 500, logged."""
        outage = getattr(scope["app"].state, "outage", None) if "app" in scope else None
        if isinstance(exc, CommitOutcomeUnknown) or is_unavailable(exc):
            return unavailable_answer(exc, outage)
        log.error(
            "unhandled error",
            extra={"action": "unhandled_error", "path": scope.get("path"), "error": describe(exc)},
        )
        log.debug("unhandled error", exc_info=exc)
        return Json(error_body("internal_error", "internal error"), 500)


def _methods_of(request: Request) -> list[str]:
    methods: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, Route | APIRoute) and route.methods:
            match, _ = route.matches({**request.scope, "method": "GET"})
            if match is not Match.NONE:
                methods |= route.methods
    return sorted(methods)


class BodySizeLimit:
    """Refuse request bodies over `max_bytes` with a 413, counting as they stream in."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if declared_too_large(scope, self.max_bytes):
            await self._too_large(send)
            return
        try:
            await self.app(scope, limited_receive(receive, self.max_bytes), send)
        except BodyTooLarge:
            await self._too_large(send)

    async def _too_large(self, send: Send) -> None:
        await body_too_large(self.max_bytes)({"type": "http"}, _empty_receive, send)


def declared_too_large(scope: Scope, max_bytes: int) -> bool:
    """Whether the request's Content-Length exceeds `max_bytes`."""
    for name, value in scope.get("headers", []):
        if name == b"content-length" and value.isdigit() and int(value) > max_bytes:
            return True
    return False


def limited_receive(receive: Receive, max_bytes: int) -> Receive:
    """`receive`, raising `BodyTooLarge` once the body it has delivered passes
    `max_bytes` (a body streamed without a Content-Length, or past it)."""
    received = 0

    async def limited() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > max_bytes:
                raise BodyTooLarge
        return message

    return limited


def body_too_large(max_bytes: int) -> Json:
    """The 413 for a request body over `max_bytes`."""
    return Json(error_body("body_too_large", f"request body exceeds {max_bytes} bytes"), 413)


class BodyTooLarge(Exception):
    """Raised by a receive that counted more than the body limit."""


async def _empty_receive() -> Message:
    return {"type": "http.disconnect"}
