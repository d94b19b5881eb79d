"""The OpenAPI document tells what every route can answer, the shared stack's answers included.

A route declares its own errors next to itself (`responses=documented(errors.X, ...)`); what the
shared stack answers is added here, once, for every operation of every service, from what the
route really goes through:

- 422 `VALIDATION_ERROR` in the envelope (replacing FastAPI's HTTPValidationError) where the route
  takes parameters or a body; 400 `INVALID_JSON` where it takes a JSON body; 413 where it takes a body;
- 401 and the bearer security scheme where a dependency of `shared.auth` authenticates the caller
  (the route's dependency tree is walked); 403 `SERVICE_TOKEN_REQUIRED` under `require_service`,
  402 `INSUFFICIENT_TIER` under `requires_tier(...)`, 429 under a `RateLimit` dependency;
- 429 `RATE_LIMITED` where the default per-client limit applies (not on exempt paths);
- 503 `DATABASE_UNAVAILABLE` where the service has a database, `CACHE_UNAVAILABLE` (Redis).

A service's own dependency declares what it raises with `@raises(errors.X, ...)`; the codes are
then documented on every route that depends on it, directly or not.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Annotated, Any, TypeVar

from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import Field

from shared import auth, errors
from shared.errors import ErrorCode, ErrorEnvelope
from shared.ratelimit import UNLIMITED_PATHS, RateLimit

BEARER = "bearerAuth"
_REF = "#/components/schemas/"
_ENVELOPE_REF = _REF + "ErrorEnvelope"
_FASTAPI_VALIDATION = _REF + "HTTPValidationError"
_CODE_IN_DESCRIPTION = re.compile(r"`([A-Z0-9_]+)`")
_JSON = "application/json"

_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before trying again.", "schema": {"type": "integer"}}}
_CHALLENGE = {"WWW-Authenticate": {"description": "`Bearer`", "schema": {"type": "string"}}}
_HEADERS = {401: _CHALLENGE, 429: _RETRY_AFTER, 503: _RETRY_AFTER}

_AUTH_ERRORS = (errors.INVALID_TOKEN, errors.MALFORMED_AUTHORIZATION, errors.USER_DELETED, errors.USER_NOT_FOUND)
# What the dependencies of shared.auth answer (requires_tier's dependency is recognised by name).
_DEPENDENCY_ERRORS: dict[Callable, tuple[ErrorCode, ...]] = {
    auth.get_current_user: (errors.NOT_AUTHENTICATED, *_AUTH_ERRORS),
    auth.get_optional_user: _AUTH_ERRORS,
    auth.authenticate: _AUTH_ERRORS,
    auth.require_service: (errors.SERVICE_TOKEN_REQUIRED,),
    auth.require_admin_or_service: (errors.ADMIN_REQUIRED,),
}
_TIER_DEPENDENCY = f"{auth.requires_tier.__qualname__}.<locals>."

F = TypeVar("F", bound=Callable)

# Python's whitespace (what str.strip() removes) spelled out: `\s` is a different set in Python, ECMAScript
# and Rust regexes, and a pattern in the document must mean the same to every reader and to the server.
WHITESPACE_CLASS = r"\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
NOT_BLANK_PATTERN = rf"[^{WHITESPACE_CLASS}]"  # something besides whitespace: `text.strip()` is not empty

# PostgreSQL's text cannot hold U+0000 (shared/app.py answers 422 when a statement meets one), so a string a
# service stores says so in its schema, and pydantic refuses it with the same pattern before any SQL runs.
STORABLE_PATTERN = r"^[^\x00]*$"
STORABLE_NOT_BLANK_PATTERN = rf"^[^\x00]*[^\x00{WHITESPACE_CLASS}][^\x00]*$"


def stored_text(*, max_length: int, min_length: int | None = None, not_blank: bool = False) -> Any:
    """The type of a string field stored in PostgreSQL: `name: stored_text(max_length=120, not_blank=True)`."""
    pattern = STORABLE_NOT_BLANK_PATTERN if not_blank else STORABLE_PATTERN
    return Annotated[str, Field(min_length=min_length, max_length=max_length, pattern=pattern)]


def omittable(kind: Any, **schema: Any) -> Any:
    """A body field that may be left out but is never null: `name: omittable(str) = None`. The default None
    stands for "not given" (pydantic does not validate a default); an explicit null fails the type (422), and
    the schema says neither null nor a default. `schema`: keywords added to the field's schema."""

    def document(field_schema: dict[str, Any]) -> None:
        field_schema.pop("default", None)
        field_schema.update(schema)

    return Annotated[kind, Field(json_schema_extra=document)]


def exactly_one_of(*fields: str) -> dict[str, Any]:
    """A model's `json_schema_extra`: exactly one of these (omittable) fields is given, as the model checks."""
    return {"oneOf": [{"required": [name]} for name in fields]}


def raises(*codes: ErrorCode) -> Callable[[F], F]:
    """Declare what a dependency answers, so every route depending on it documents it:

    @raises(errors.USER_TOKEN_REQUIRED)
    async def current_account(user: CurrentUser = Depends(get_current_user)) -> CurrentUser: ...
    """

    def mark(dependency: F) -> F:
        dependency.documented_errors = tuple(getattr(dependency, "documented_errors", ())) + codes  # type: ignore[attr-defined]
        return dependency

    return mark


def _calls(route) -> list[Callable]:
    """Every dependency callable under the route (sub-dependencies included), the endpoint excluded."""
    out: list[Callable] = []
    stack = list(route.dependant.dependencies)
    while stack:
        dependant = stack.pop()
        if dependant.call is not None:
            out.append(dependant.call)
        stack.extend(dependant.dependencies)
    return out


def _dependency_errors(call: Callable) -> tuple[ErrorCode, ...]:
    found = list(_DEPENDENCY_ERRORS.get(call, ()))
    qualname = getattr(call, "__qualname__", "")
    if getattr(call, "__module__", None) == auth.__name__ and qualname.startswith(_TIER_DEPENDENCY):
        found.append(errors.INSUFFICIENT_TIER)
    if isinstance(call, RateLimit):
        found.append(errors.RATE_LIMITED)
    found.extend(getattr(call, "documented_errors", ()))
    return tuple(found)


def _security(calls: Iterable[Callable]) -> list[dict[str, list]] | None:
    calls = set(calls)
    if auth.get_current_user in calls:
        return [{BEARER: []}]
    if calls & {auth.get_optional_user, auth.authenticate}:
        return [{BEARER: []}, {}]  # a token is optional, but checked when given
    return None


def _operation_errors(route, operation: dict, *, database: bool, limited: bool) -> list[ErrorCode]:
    found: list[ErrorCode] = []
    for call in _calls(route):
        found.extend(_dependency_errors(call))
    body = operation.get("requestBody")
    if operation.get("parameters") or body:
        found.append(errors.VALIDATION_ERROR)
    if body:
        found.append(errors.PAYLOAD_TOO_LARGE)
        if _JSON in body.get("content", {}):
            found.append(errors.INVALID_JSON)
        if "multipart/form-data" in body.get("content", {}):
            found.append(errors.BAD_REQUEST)  # a body that is not valid multipart (Starlette's parser)
    if limited:
        found.append(errors.RATE_LIMITED)
    if database:
        found.append(errors.DATABASE_UNAVAILABLE)
    found.append(errors.CACHE_UNAVAILABLE)
    return list(dict.fromkeys(found))


def _describe(codes: Sequence[ErrorCode]) -> str:
    return "; ".join(f"`{c.code}`: {c.message}" for c in sorted(codes, key=lambda c: c.code))


def _merge(responses: dict[str, Any], codes: Sequence[ErrorCode]) -> None:
    for status, response in responses.items():
        # A route answering HTML (response_class) still answers its errors as JSON envelopes.
        content = response.get("content") or {}
        if status[:1] in ("4", "5") and content and _JSON not in content:
            schemas = [media.get("schema", {}).get("$ref") for media in content.values()]
            if _ENVELOPE_REF in schemas or _FASTAPI_VALIDATION in schemas:
                response["content"] = {_JSON: {"schema": {"$ref": schemas[0]}}}
    by_status: dict[int, list[ErrorCode]] = {}
    for code in codes:
        by_status.setdefault(code.status, []).append(code)
    for status, group in sorted(by_status.items()):
        envelope = {_JSON: {"schema": {"$ref": _ENVELOPE_REF}}}
        existing = responses.get(str(status))
        if existing is None:
            responses[str(status)] = {"description": _describe(group), "content": envelope}
        else:
            schema = existing.get("content", {}).get(_JSON, {}).get("schema", {})
            if schema.get("$ref") == _FASTAPI_VALIDATION:
                existing["content"] = envelope
                existing["description"] = _describe(group)
            else:
                # The route documented this status itself: add the shared codes it does not name.
                named = set(_CODE_IN_DESCRIPTION.findall(existing.get("description", "")))
                extra = [c for c in group if c.code not in named]
                if extra:
                    existing["description"] = "; ".join(filter(None, [existing.get("description"), _describe(extra)]))
        if status in _HEADERS:
            responses[str(status)].setdefault("headers", {}).update(_HEADERS[status])


def _envelope_schemas() -> dict[str, Any]:
    schema = ErrorEnvelope.model_json_schema(ref_template=_REF + "{model}", mode="serialization")
    definitions = schema.pop("$defs", {})
    return {**definitions, "ErrorEnvelope": schema}


def complete_document(
    app: FastAPI, document: dict[str, Any], *, database: bool, rate_limit_exempt: Sequence[str] = ()
) -> dict[str, Any]:
    """`document` (FastAPI's) with what the shared stack answers added to every operation."""
    unlimited = tuple(UNLIMITED_PATHS) + tuple(rate_limit_exempt)
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for name, schema in _envelope_schemas().items():
        schemas.setdefault(name, schema)
    components.setdefault("securitySchemes", {})[BEARER] = {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "A Supabase-format access token (a user's, or a service token for service routes).",
    }
    paths = document.get("paths", {})
    # Routes as FastAPI's own document generator walks them (included routers resolved).
    for route in iter_route_contexts(app.routes):
        if not isinstance(route.original_route, APIRoute) or not route.include_in_schema:
            continue
        if route.path_format.startswith("/health"):
            continue
        item = paths.get(route.path_format)
        if item is None:
            continue
        calls = _calls(route)
        security = _security(calls)
        for method in sorted(route.methods):
            operation = item.get(method.lower())
            if operation is None:
                continue
            codes = _operation_errors(
                route, operation, database=database, limited=not route.path_format.startswith(unlimited)
            )
            responses = operation.setdefault("responses", {})
            _merge(responses, codes)
            operation["responses"] = dict(sorted(responses.items()))
            if security is not None:
                operation["security"] = security
    for name in ("HTTPValidationError", "ValidationError"):  # in this order: the first refers to the second
        if name in schemas and f'"{_REF}{name}"' not in json.dumps(document):
            del schemas[name]
    return document


def document_configured_limits(app: FastAPI, limits: dict[tuple[str, str], dict[str, Any]]) -> None:
    """State limits that come from configuration in the app's document: `{(schema, property): keywords}`,
    e.g. `{("GroupChatRequest", "characters"): {"maxItems": settings.chat_max_group_characters}}`. The
    models are built at import, before settings exist; the document is built per app, with them."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        document = build()
        schemas = document.get("components", {}).get("schemas", {})
        for (schema_name, property_name), keywords in limits.items():
            prop = schemas[schema_name]["properties"][property_name]  # a KeyError names a stale entry
            # `x: T | None` is anyOf [T, null]: the limit is T's.
            branches = [b for b in prop.get("anyOf", []) if b.get("type") != "null"] or [prop]
            for branch in branches:
                branch.update(keywords)
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def install_openapi(app: FastAPI, *, database: bool, rate_limit_exempt: Sequence[str] = ()) -> None:
    """Make `app.openapi()` (and /openapi.json, /docs) answer the completed document, built once."""
    build = app.openapi  # FastAPI's: cached, rebuilt when routes are added
    completed: list[int] = []

    def openapi() -> dict[str, Any]:
        document = build()
        if completed[-1:] != [id(document)]:
            complete_document(app, document, database=database, rate_limit_exempt=rate_limit_exempt)
            completed[:] = [id(document)]
        return document

    app.openapi = openapi  # type: ignore[method-assign]


__all__ = [
    "BEARER",
    "NOT_BLANK_PATTERN",
    "STORABLE_NOT_BLANK_PATTERN",
    "STORABLE_PATTERN",
    "WHITESPACE_CLASS",
    "complete_document",
    "document_configured_limits",
    "exactly_one_of",
    "install_openapi",
    "omittable",
    "raises",
    "stored_text",
]
