"""The error envelope and the error catalogue.

Every error a client can see is `{"detail": {"code": "...", "message": "...", ...}}`, never a
stack trace. Codes are declared once, as `ErrorCode` constants: the ones every service can
answer here, a service's own in `<service>_service/errors.py`. A route raises one
(`raise errors.CONVERSATION_NOT_FOUND()`, optionally with a more precise message or extra
fields) and declares what it may answer next to itself
(`@router.get(..., responses=documented(errors.CONVERSATION_NOT_FOUND))`), so the OpenAPI
document lists every status and code a client can meet.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("shared.errors")


class APIError(Exception):
    """Raise anywhere in a request to answer with the envelope."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None, **extra: Any):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"detail": {"code": self.code, "message": self.message, **self.extra}}


@dataclass(frozen=True, slots=True)
class ErrorCode:
    """One entry of the catalogue: a status, a stable code and the default message.

    Calling it builds the APIError to raise: `raise NOT_FOUND()`, `raise NOT_FOUND("No such story.")`,
    `raise RATE_LIMITED(headers={"Retry-After": "3"}, retry_after=3)`.
    """

    status: int
    code: str
    message: str

    def __call__(self, message: str | None = None, *, headers: dict[str, str] | None = None, **extra: Any) -> APIError:
        return APIError(self.status, self.code, message or self.message, headers=headers, **extra)

    def response(
        self, message: str | None = None, *, headers: dict[str, str] | None = None, **extra: Any
    ) -> JSONResponse:
        return error_response(self.status, self.code, message or self.message, headers=headers, **extra)


# Answered by every service (the app factory, shared.auth, shared.ratelimit, shared.quota).
BAD_REQUEST = ErrorCode(400, "BAD_REQUEST", "The request is malformed.")
INVALID_JSON = ErrorCode(400, "INVALID_JSON", "The request body is not valid JSON.")
UNAUTHORIZED = ErrorCode(401, "UNAUTHORIZED", "Authentication is required.")
NOT_AUTHENTICATED = ErrorCode(401, "NOT_AUTHENTICATED", "Authentication required.")
INVALID_TOKEN = ErrorCode(401, "INVALID_TOKEN", "The access token is missing, invalid or expired.")
MALFORMED_AUTHORIZATION = ErrorCode(401, "MALFORMED_AUTHORIZATION", "Authorization header must be 'Bearer <token>'.")
# A validly signed token whose user was deleted (every service, from the user.deleted event on) or
# that Auth does not know (USER_NOT_FOUND: every service, shared.known_users asks Auth once per id).
USER_DELETED = ErrorCode(401, "USER_DELETED", "This account has been deleted; sign up again to continue.")
USER_NOT_FOUND = ErrorCode(401, "USER_NOT_FOUND", "This token's account does not exist; sign in again.")
PAYMENT_REQUIRED = ErrorCode(402, "PAYMENT_REQUIRED", "This needs a paid plan.")
INSUFFICIENT_TIER = ErrorCode(402, "INSUFFICIENT_TIER", "Your plan does not include this.")
INSUFFICIENT_QUOTA = ErrorCode(402, "INSUFFICIENT_QUOTA", "Your quota for this is used up.")
FORBIDDEN = ErrorCode(403, "FORBIDDEN", "You may not do this.")
SERVICE_TOKEN_REQUIRED = ErrorCode(403, "SERVICE_TOKEN_REQUIRED", "This route is for SceneXtras services only.")
ADMIN_REQUIRED = ErrorCode(403, "ADMIN_REQUIRED", "This route is for admins and SceneXtras services only.")
USER_TOKEN_REQUIRED = ErrorCode(403, "USER_TOKEN_REQUIRED", "This route needs a user's token, not a service token.")
NOT_FOUND = ErrorCode(404, "NOT_FOUND", "Not found.")
METHOD_NOT_ALLOWED = ErrorCode(405, "METHOD_NOT_ALLOWED", "Method not allowed.")
CONFLICT = ErrorCode(409, "CONFLICT", "The request conflicts with the current state.")
PAYLOAD_TOO_LARGE = ErrorCode(413, "PAYLOAD_TOO_LARGE", "The request body is too large.")
UNSUPPORTED_MEDIA_TYPE = ErrorCode(415, "UNSUPPORTED_MEDIA_TYPE", "This media type is not supported.")
VALIDATION_ERROR = ErrorCode(422, "VALIDATION_ERROR", "The request is invalid.")
RATE_LIMITED = ErrorCode(429, "RATE_LIMITED", "Too many requests; try again shortly.")
INTERNAL_ERROR = ErrorCode(500, "INTERNAL_ERROR", "Something went wrong on our side.")
BAD_GATEWAY = ErrorCode(502, "BAD_GATEWAY", "An upstream service failed.")
SERVICE_UNAVAILABLE = ErrorCode(503, "SERVICE_UNAVAILABLE", "The service is unavailable; try again shortly.")
DATABASE_UNAVAILABLE = ErrorCode(503, "DATABASE_UNAVAILABLE", "The database is unavailable; try again shortly.")
CACHE_UNAVAILABLE = ErrorCode(503, "CACHE_UNAVAILABLE", "A dependency is unavailable; try again shortly.")
GATEWAY_TIMEOUT = ErrorCode(504, "GATEWAY_TIMEOUT", "An upstream service timed out.")

# What Starlette's own HTTPExceptions (404 for an unknown path, 405, ...) become.
_DEFAULT_CODES = {
    e.status: e.code
    for e in (
        BAD_REQUEST,
        UNAUTHORIZED,
        PAYMENT_REQUIRED,
        FORBIDDEN,
        NOT_FOUND,
        METHOD_NOT_ALLOWED,
        CONFLICT,
        PAYLOAD_TOO_LARGE,
        UNSUPPORTED_MEDIA_TYPE,
        VALIDATION_ERROR,
        RATE_LIMITED,
        INTERNAL_ERROR,
        BAD_GATEWAY,
        SERVICE_UNAVAILABLE,
        GATEWAY_TIMEOUT,
    )
}


class ErrorDetail(BaseModel):
    """`detail` of every error answer; codes may add fields (`errors`, `retry_after`, ...)."""

    model_config = ConfigDict(extra="allow")
    code: str
    message: str


class ErrorEnvelope(BaseModel):
    detail: ErrorDetail


def documented(*codes: ErrorCode) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: each status it may answer, with the envelope as its schema and
    the codes in the description. Merge with `|` for several groups."""
    by_status: dict[int, list[ErrorCode]] = {}
    for code in codes:
        by_status.setdefault(code.status, []).append(code)
    return {
        status: {
            "model": ErrorEnvelope,
            "description": "; ".join(f"`{c.code}`: {c.message}" for c in sorted(group, key=lambda c: c.code)),
        }
        for status, group in sorted(by_status.items())
    }


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    return JSONResponse({"detail": {"code": code, "message": message, **extra}}, status_code=status, headers=headers)


def _jsonable_errors(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for err in errors:
        item = {"loc": list(err.get("loc", ())), "msg": str(err.get("msg", "")), "type": err.get("type", "")}
        out.append(item)
    return out


def _allowed_methods(request: Request) -> list[str]:
    """Every method the path answers. Starlette's 405 lists only the first route matching the path
    (GET /x and POST /x are two routes), and a client must learn them all from `Allow`."""
    from fastapi.routing import iter_route_contexts

    path = request.scope["path"]
    literal: set[str] = set()
    templated: set[str] = set()
    for route in iter_route_contexts(request.app.routes):
        regex = getattr(route, "path_regex", None)
        if route.methods and regex is not None and regex.match(path):
            (templated if getattr(route, "param_convertors", None) else literal).update(route.methods)
    # As OpenAPI matches paths: a concrete path (/images/upload) is its own resource, before any template
    # that also matches it (/images/{image_id}), so a document and this header name the same methods.
    return sorted(literal or templated)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError):
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        errors = _jsonable_errors(exc.errors())
        if any(e["type"] == "json_invalid" for e in errors):
            return INVALID_JSON.response(errors=errors)
        return VALIDATION_ERROR.response(errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        # FastAPI answers a JSON body it could not decode (invalid UTF-8) or parse (nesting deeper
        # than the parser's recursion limit) with a bare 400: to the client both are invalid JSON.
        if exc.status_code == 400 and isinstance(exc.__cause__, UnicodeDecodeError):
            return INVALID_JSON.response("The request body is not valid UTF-8 JSON.")
        if exc.status_code == 400 and isinstance(exc.__cause__, RecursionError):
            return INVALID_JSON.response("The request body is nested too deeply.")
        if isinstance(exc.detail, dict) and "code" in exc.detail:
            body = {"detail": exc.detail}
        else:
            code = _DEFAULT_CODES.get(exc.status_code, "ERROR")
            body = {"detail": {"code": code, "message": str(exc.detail)}}
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:
            headers = {**(headers or {}), "Allow": ", ".join(_allowed_methods(request))}
        return JSONResponse(body, status_code=exc.status_code, headers=headers)

    @app.exception_handler(Exception)
    async def _unhandled(request: Request, exc: Exception):
        log.exception("unhandled error", extra={"path": request.url.path})
        return INTERNAL_ERROR.response()
