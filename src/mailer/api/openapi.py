"""The OpenAPI description as Mailer really behaves: the API key as a bearer security
scheme (with the scope each route needs), every error each route gives with Mailer's error
body, and `/docs` served from vendored Swagger UI assets (no CDN: it works offline)."""

from __future__ import annotations

from importlib import resources
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.staticfiles import StaticFiles

from mailer.apps.access import READ, SEND, WEBHOOKS
from mailer.delivery.textcheck import ONE_LINE

ASSETS = "/docs/assets"


class FieldProblem(BaseModel):
    """One bad field of a 422."""

    field: str = Field(description="Where, e.g. `to[0].email` or `emails[3].subject`")
    message: str


class ErrorBody(BaseModel):
    """Every error answer: a stable code, a human message, and per code some details."""

    model_config = ConfigDict(extra="allow")

    error: str = Field(description="Stable code, e.g. `invalid_request`, `missing_scope`")
    message: str
    details: list[FieldProblem] | None = Field(default=None, description="With 422")
    scope: str | None = Field(default=None, description="With `missing_scope`: the one needed")
    domain: str | None = Field(default=None, description="With `sender_not_allowed`")
    field: str | None = Field(
        default=None, description="With `sender_not_allowed` and `invalid_range`"
    )
    retry_after: int | None = Field(
        default=None, description="With `daily_quota_exceeded`: seconds until it renews"
    )
    state: str | None = Field(default=None, description="With `job_state`: the job's state")


_WHY = {
    400: "Malformed header, cursor or body; a time range that is empty or too long",
    401: "Missing, unknown or revoked credentials",
    403: "The key lacks the route's scope, or the sender domain is not allowed",
    404: "No such resource for this app",
    409: "Conflict (Idempotency-Key reused with another body; delivery in progress; "
    "the job's state does not allow the action)",
    413: "Request body too large (`MAILER_MAX_BODY_BYTES`)",
    422: "Invalid fields, each named in `details`",
    429: "The app's daily quota is used up (`daily_quota_exceeded`); `Retry-After` says "
    "when the UTC day rolls over",
    503: "The database is unreachable now (retry after `Retry-After`; with "
    '`"outcome": "unknown"` a write may have committed: retry with the same Idempotency-Key), '
    "or, for webhook secrets, the server has no MAILER_SECRET_KEY",
}

# Per route (method, path): the scope its key needs (None: not an API-key route) and the
# errors it gives besides 401/403 (API-key routes), 422 (FastAPI's own validation) and 503
# (every one of them needs the database: api/errors.py answers 503 while it is away).
_ROUTES: dict[tuple[str, str], tuple[str | None, tuple[int, ...]]] = {
    ("post", "/queue"): (SEND, (400, 409, 413, 429)),
    ("post", "/queue/batch"): (SEND, (400, 409, 413, 429)),
    ("get", "/status/{job_id}"): (READ, (404,)),
    ("get", "/jobs"): (READ, (400,)),
    ("post", "/jobs/{job_id}/cancel"): (SEND, (404, 409)),
    ("patch", "/jobs/{job_id}"): (SEND, (404, 409, 413)),
    ("post", "/jobs/{job_id}/retry"): (SEND, (404, 409)),
    ("get", "/feed"): (READ, (400,)),
    ("get", "/stats"): (READ, (400,)),
    ("get", "/suppressions"): (READ, (400,)),
    ("post", "/suppressions"): (SEND, (413,)),
    ("delete", "/suppressions/{email}"): (SEND, (404,)),
    ("get", "/suppressions/{email}/history"): (READ, ()),
    ("post", "/webhooks"): (WEBHOOKS, (413,)),
    ("get", "/webhooks"): (WEBHOOKS, ()),
    ("get", "/webhooks/{endpoint_id}"): (WEBHOOKS, (404,)),
    ("patch", "/webhooks/{endpoint_id}"): (WEBHOOKS, (404, 413)),
    ("delete", "/webhooks/{endpoint_id}"): (WEBHOOKS, (404,)),
    ("post", "/webhooks/{endpoint_id}/rotate-secret"): (WEBHOOKS, (404,)),
    ("get", "/webhooks/{endpoint_id}/attempts"): (WEBHOOKS, (404,)),
    ("post", "/webhooks/{endpoint_id}/deliveries/{delivery_id}/resend"): (WEBHOOKS, (404, 409)),
    ("post", "/webhooks/{endpoint_id}/recover"): (WEBHOOKS, (404, 413)),
    ("post", "/webhooks/{endpoint_id}/test"): (WEBHOOKS, (404,)),
    ("post", "/events"): (None, (400, 401, 413)),
    ("get", "/audit"): (READ, ()),
}


def describe(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document, completed as above (built once, then cached)."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    spec = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    components = spec.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    for name, model in (("ErrorBody", ErrorBody), ("FieldProblem", FieldProblem)):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schema.pop("$defs", None)
        schemas[name] = schema
    for schema in schemas.values():
        _no_nul_strings(schema)
    # Free-form JSON (metadata, template variables) holds no NUL either; variables no null,
    # at any depth (Mailjet fails the call on one).
    schemas["Json"] = _json_schema("#/components/schemas/Json", null=True)
    schemas["NonNullJson"] = _json_schema("#/components/schemas/NonNullJson", null=False)
    email = schemas["EmailRequest"]["properties"]
    email["variables"]["additionalProperties"] = {"$ref": "#/components/schemas/NonNullJson"}
    email["variables"]["propertyNames"] = {"pattern": NO_NUL}
    metadata = email["metadata"]["anyOf"][0]
    metadata["additionalProperties"] = {"$ref": "#/components/schemas/Json"}
    metadata["propertyNames"] = {"pattern": NO_NUL}
    components["securitySchemes"] = {
        "apiKey": {
            "type": "http",
            "scheme": "bearer",
            "description": "An app's API key (`mailer apps keys create APP`), with the "
            "scope the route names: `send`, `read` or `webhooks`.",
        },
        "mailjetEvents": {
            "type": "http",
            "scheme": "basic",
            "description": "The credentials embedded in the callback URL registered at "
            "Mailjet (`MAILER_EVENTS_USER`, `MAILER_EVENTS_PASSWORD`).",
        },
    }
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            _complete(operation, _ROUTES.get((method, path)))
    app.openapi_schema = spec
    return spec


# JSON Schema (ECMA 262) spelling of "no NUL character", which Mailer refuses everywhere.
NO_NUL = "^[^\\u0000]*$"
_ONE_LINE_NO_NUL = "^[^\\r\\n\\u0000]*$"


def _no_nul_strings(schema: Any) -> None:
    """Give every free string of `schema` (not an enum, a format or a pattern that already
    excludes NUL) the NO_NUL pattern."""
    if isinstance(schema, list):
        for item in schema:
            _no_nul_strings(item)
        return
    if not isinstance(schema, dict):
        return
    if schema.get("type") == "string" and "enum" not in schema and "format" not in schema:
        if schema.get("pattern") == ONE_LINE:
            schema["pattern"] = _ONE_LINE_NO_NUL
        schema.setdefault("pattern", NO_NUL)
    if schema.get("pattern") == ONE_LINE:  # on an optional string, beside its anyOf
        schema["pattern"] = _ONE_LINE_NO_NUL
    for key, value in schema.items():
        if key not in ("enum", "const", "default", "examples"):
            _no_nul_strings(value)


def _json_schema(ref: str, *, null: bool) -> dict[str, Any]:
    kinds: list[dict[str, Any]] = [
        {"type": "string", "pattern": NO_NUL},
        {"type": "number"},
        {"type": "boolean"},
        {"type": "array", "items": {"$ref": ref}},
        {
            "type": "object",
            "propertyNames": {"pattern": NO_NUL},
            "additionalProperties": {"$ref": ref},
        },
    ]
    if null:
        kinds.append({"type": "null"})
    what = "Any JSON value" if null else "Any JSON value but null, at any depth"
    return {"description": f"{what}; no NUL character in its strings", "anyOf": kinds}


def _complete(operation: dict[str, Any], route: tuple[str | None, tuple[int, ...]] | None) -> None:
    operation["parameters"] = [
        p for p in operation.get("parameters", []) if p["name"].lower() != "authorization"
    ] or None
    if operation["parameters"] is None:
        del operation["parameters"]
    responses = operation.setdefault("responses", {})
    validated = "422" in responses
    responses.pop("422", None)
    if route is None:
        return
    scope, errors = route
    codes = set(errors) | {503}
    if scope is not None:
        operation["security"] = [{"apiKey": [scope]}]
        codes |= {401, 403}
    else:
        operation["security"] = [{"mailjetEvents": []}]
    if validated or "requestBody" in operation:
        codes.add(422)
    if "requestBody" in operation:
        codes.add(400)  # a body that is not JSON
    for code in sorted(codes):
        responses[str(code)] = {
            "description": _WHY[code],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
        }


def install(app: FastAPI) -> None:
    """Serve `/openapi.json` as `describe` builds it and `/docs` from the vendored assets."""
    app.openapi = lambda: describe(app)  # type: ignore[method-assign]
    assets = resources.files("mailer.api") / "static" / "swagger-ui"
    app.mount(ASSETS, StaticFiles(directory=str(assets)), name="swagger-ui")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} API",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon-32x32.png",
        )
