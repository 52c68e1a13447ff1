"""The enqueue routes' fast path: `POST /queue` and `POST /queue/batch` answered without
Starlette's and FastAPI's per-request layers, with every behaviour those layers give them.

Through the usual stack a request passes ten layers before its handler (FastAPI's
telemetry check and its exception and body-limit middleware, Starlette's error and
exception middleware, FastAPI's exit stack, the router's match of every route, the route's
own exception wrapper and exit stacks) and every message it sends passes four wrappers
back; on `POST /queue` that was about a third of the API's CPU per request (220 µs then
150 µs with this path, one API process on 2 cores). `Api` takes the two routes straight
to their handler (`EnqueuingRoute`) and does here what the layers did for them:

- `ErrorBoundary`: an exception no handler takes answers 503 + `Retry-After` when the
  database is away, else a bare 500 logged as one line; every answer is counted in the
  metrics under the route's template.
- `BodySizeLimit`: a declared or streamed body over `MAX_BODY_BYTES` answers 413.
- The exception handlers registered on the app (`errors.install`: Mailer's JSON error
  bodies), looked up by the exception's class as Starlette looks them up.
- The scope the router would have set (`app`, `router`, `route`, `endpoint`,
  `path_params`), so handlers and metrics see the same request.

Anything else takes the usual stack: another method or path, a `root_path`, FastAPI's
native OpenTelemetry when it is configured, or any middleware beyond Mailer's two (so a
middleware added later is never skipped). The routes stay in the app's router, so the
OpenAPI description and the usual path are unchanged; `tests/integration/test_fast_path.py`
holds both paths to the same answers.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI
from starlette._utils import is_async_callable
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import Receive, Scope, Send

from mailer.api.deps import EnqueuingRoute
from mailer.api.errors import (
    BodySizeLimit,
    BodyTooLarge,
    ErrorBoundary,
    body_too_large,
    declared_too_large,
    limited_receive,
)
from mailer.metrics import count

Handler = Callable[[Request], Awaitable[Response]]
ExceptionHandler = Callable[[Request, Exception], Any]


class Api(FastAPI):
    """FastAPI with the enqueue routes' fast path (this module's docstring)."""

    _fast_routes: dict[str, FastRoute] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve a request: the fast path when it applies, else FastAPI as usual."""
        if scope["type"] == "http" and scope["method"] == "POST":
            routes = self._fast_routes
            if routes is None:
                routes = self._fast_routes = fast_routes(self)
            fast = routes.get(scope["path"])
            if fast is not None and not scope.get("root_path") and not _telemetry_on(self):
                scope["app"] = self
                await fast(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def _telemetry_on(app: FastAPI) -> bool:
    """Whether FastAPI's native OpenTelemetry is configured (FastAPI ≥ 0.165): its spans and
    metrics come from the usual stack, so the fast path then stands aside."""
    telemetry = getattr(app, "_native_telemetry", None)
    return telemetry is not None and bool(telemetry.enabled())


def fast_routes(app: FastAPI) -> dict[str, FastRoute]:
    """The fast path of each `EnqueuingRoute` of `app` by its path, built on the first
    request (as Starlette builds its middleware stack): none when the app has middleware
    other than Mailer's `ErrorBoundary` outside `BodySizeLimit`, or a root path."""
    classes: list[object] = [m.cls for m in app.user_middleware]
    if app.root_path or classes != [ErrorBoundary, BodySizeLimit]:
        return {}
    max_bytes = app.user_middleware[1].kwargs["max_bytes"]
    if not isinstance(max_bytes, int):
        return {}
    handlers, status_handlers = _exception_handlers(app)
    routes: dict[str, FastRoute] = {}
    for route in app.router.routes:
        if not isinstance(route, EnqueuingRoute) or route.methods != {"POST"}:
            continue
        if route.param_convertors or _first_match(app, route.path) is not route:
            continue  # a path with parameters, or one another route takes first
        handler = route.get_route_handler()
        routes[route.path] = FastRoute(app, route, handler, max_bytes, handlers, status_handlers)
    return routes


def _first_match(app: FastAPI, path: str) -> object:
    """The route the router gives a `POST path` to."""
    scope = {"type": "http", "method": "POST", "path": path, "root_path": "", "headers": []}
    for route in app.router.routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return route
        if match is Match.PARTIAL:
            return None
    return None


def _exception_handlers(
    app: FastAPI,
) -> tuple[dict[type[BaseException], ExceptionHandler], dict[int, ExceptionHandler]]:
    """The app's handlers as its `ExceptionMiddleware` holds them: by class, and by status
    for `HTTPException`s (500 and `Exception` are the server-error layer's, which
    `ErrorBoundary` stands in front of)."""
    by_class: dict[type[BaseException], ExceptionHandler] = {}
    by_status: dict[int, ExceptionHandler] = {}
    for key, handler in app.exception_handlers.items():
        if key in (500, Exception):
            continue
        if isinstance(key, int):
            by_status[key] = handler
        else:
            by_class[key] = handler
    return by_class, by_status


class FastRoute:
    """One enqueue route's request, from the server straight to its handler."""

    __slots__ = ("app", "handler", "handlers", "max_bytes", "route", "status_handlers")

    def __init__(
        self,
        app: FastAPI,
        route: EnqueuingRoute,
        handler: Handler,
        max_bytes: int,
        handlers: dict[type[BaseException], ExceptionHandler],
        status_handlers: dict[int, ExceptionHandler],
    ) -> None:
        self.app = app
        self.route = route
        self.handler = handler
        self.max_bytes = max_bytes
        self.handlers = handlers
        self.status_handlers = status_handlers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer the request, as `ErrorBoundary` around the rest would."""
        began = time.perf_counter()
        route = self.route
        scope["router"] = self.app.router
        scope["route"] = route
        scope["endpoint"] = route.endpoint
        scope["path_params"] = {}
        status = 0  # until the answer starts
        try:
            response = await self._response(scope, receive)
            if response is not None:  # a handler may answer nothing, as with Starlette
                status = response.status_code
                await response(scope, receive, send)
        except Exception as exc:
            if status:
                raise
            answer = ErrorBoundary.answer(scope, exc)
            status = answer.status_code
            await answer(scope, receive, send)
        finally:
            count.http_answer(scope, status or 500, time.perf_counter() - began)

    async def _response(self, scope: Scope, receive: Receive) -> Response | None:
        """The handler's response, or the one its exception's handler gives, or the 413;
        an exception without a handler propagates."""
        max_bytes = self.max_bytes
        if declared_too_large(scope, max_bytes):
            return body_too_large(max_bytes)
        request = Request(scope, limited_receive(receive, max_bytes))
        try:
            return await self.handler(request)
        except BodyTooLarge:
            return body_too_large(max_bytes)
        except Exception as exc:
            handler = None
            if isinstance(exc, HTTPException):
                handler = self.status_handlers.get(exc.status_code)
            if handler is None:
                handler = _handler_for(self.handlers, exc)
            if handler is None:
                raise
            if is_async_callable(handler):
                response = await handler(request, exc)
            else:
                response = await run_in_threadpool(handler, request, exc)
            # Reused exception instances accumulate tracebacks across requests.
            exc.__traceback__ = None
            answer: Response | None = response
            return answer


def _handler_for(
    handlers: dict[type[BaseException], ExceptionHandler], exc: Exception
) -> ExceptionHandler | None:
    for cls in type(exc).__mro__:
        if cls in handlers:
            return handlers[cls]
    return None
