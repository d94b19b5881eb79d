"""The app factory's OpenAPI side (shared/openapi.py): every document declares the error envelope
(never FastAPI's HTTPValidationError) and the bearer scheme, and each operation lists what the
shared stack can answer from what the route really goes through."""

from __future__ import annotations

import json
import re

import pytest
from fastapi import APIRouter, Depends

from shared import errors
from shared.app import create_app
from shared.auth import CurrentUser, get_current_user, get_optional_user
from shared.errors import documented
from shared.openapi import raises
from shared.settings import ServiceSettings
from shared.testing.env import patched_environ
from tests.shared.apps import build_probe_app
from tests.shared.documents import PLACEHOLDERS, SERVICES, document

ENVELOPE = {"$ref": "#/components/schemas/ErrorEnvelope"}
BEARER = {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}


def _operations(doc: dict):
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            yield f"{method.upper()} {path}", operation


def _codes(response: dict) -> set[str]:
    return set(re.findall(r"`([A-Z0-9_]+)`", response.get("description", "")))


@pytest.mark.parametrize("service", SERVICES)
def test_every_document_declares_the_envelope_and_the_bearer_scheme(service):
    doc = document(service)
    text = json.dumps(doc)
    assert "HTTPValidationError" not in text and '"#/components/schemas/ValidationError"' not in text
    schemas = doc["components"]["schemas"]
    assert schemas["ErrorEnvelope"]["required"] == ["detail"]
    assert set(schemas["ErrorDetail"]["required"]) == {"code", "message"}
    assert {k: v for k, v in doc["components"]["securitySchemes"]["bearerAuth"].items() if k != "description"} == BEARER
    for name, operation in _operations(doc):
        responses = operation["responses"]
        for status, response in responses.items():
            if status.startswith(("4", "5")) and not name.startswith("GET /health"):
                assert response["content"]["application/json"]["schema"] == ENVELOPE, (name, status)
        if operation.get("parameters") or operation.get("requestBody"):
            assert "VALIDATION_ERROR" in _codes(responses["422"]), name
        if operation.get("security"):
            optional = operation["security"][-1] == {}
            assert {"NOT_AUTHENTICATED", "INVALID_TOKEN"} <= _codes(responses["401"]) or optional, name
        if not name.startswith("GET /health"):
            assert "CACHE_UNAVAILABLE" in _codes(responses["503"]), name


def _probe_document(**kwargs) -> dict:
    with patched_environ(PLACEHOLDERS):
        return build_probe_app(PLACEHOLDERS, **kwargs).openapi()


def test_what_each_dependency_answers_is_documented():
    doc = _probe_document()
    paths = doc["paths"]

    me = paths["/me"]["get"]
    assert me["security"] == [{"bearerAuth": []}]
    assert {"NOT_AUTHENTICATED", "INVALID_TOKEN", "MALFORMED_AUTHORIZATION", "USER_DELETED"} <= _codes(
        me["responses"]["401"]
    )
    assert "WWW-Authenticate" in me["responses"]["401"]["headers"]
    assert "403" not in me["responses"] and "402" not in me["responses"]
    assert "422" not in me["responses"]  # no parameters, no body: nothing to validate

    assert _codes(paths["/pro-only"]["get"]["responses"]["402"]) == {"INSUFFICIENT_TIER"}
    assert _codes(paths["/internal"]["get"]["responses"]["403"]) == {"SERVICE_TOKEN_REQUIRED"}

    items = paths["/items"]["post"]["responses"]
    assert _codes(items["400"]) == {"INVALID_JSON"}
    assert _codes(items["413"]) == {"PAYLOAD_TOO_LARGE"}
    assert _codes(items["422"]) == {"VALIDATION_ERROR"}
    assert items["422"]["content"]["application/json"]["schema"] == ENVELOPE

    # The per-route RateLimit dependency, and the default limit everywhere but health and docs.
    assert _codes(paths["/limited"]["get"]["responses"]["429"]) == {"RATE_LIMITED"}
    public = paths["/public"]["get"]
    assert "security" not in public and "401" not in public["responses"]
    assert _codes(public["responses"]["429"]) == {"RATE_LIMITED"}
    assert "Retry-After" in public["responses"]["429"]["headers"]
    assert _codes(public["responses"]["503"]) == {"DATABASE_UNAVAILABLE", "CACHE_UNAVAILABLE"}

    assert set(paths["/health"]["get"]["responses"]) == {"200"}
    assert set(paths["/health/ready"]["get"]["responses"]) == {"200", "503"}
    assert not any(p.startswith("/api/probe") for p in paths)  # legacy prefixes stay out


def test_exempt_paths_and_services_without_a_database():
    doc = _probe_document(rate_limit_exempt=["/public"], use_database=False)
    public = doc["paths"]["/public"]["get"]["responses"]
    assert "429" not in public
    assert _codes(public["503"]) == {"CACHE_UNAVAILABLE"}


def test_service_dependencies_and_route_declarations_merge_with_the_shared_codes():
    @raises(errors.USER_TOKEN_REQUIRED)
    async def current_account(user: CurrentUser = Depends(get_current_user)) -> CurrentUser:
        return user

    async def account_of(user: CurrentUser = Depends(current_account)) -> CurrentUser:
        return user

    router = APIRouter()

    @router.get("/account/{account_id}", responses=documented(errors.NOT_FOUND, errors.CONFLICT))
    async def account(account_id: int, user: CurrentUser = Depends(account_of)):
        return {}

    @router.get("/maybe")
    async def maybe(user: CurrentUser | None = Depends(get_optional_user)):
        return {}

    with patched_environ(PLACEHOLDERS):
        settings = ServiceSettings(service_name="probe")
        app = create_app(service="probe", settings=settings, routers=[router], outbox=False)
    doc = app.openapi()
    assert app.openapi() is doc  # built once
    responses = doc["paths"]["/account/{account_id}"]["get"]["responses"]
    assert _codes(responses["403"]) == {"USER_TOKEN_REQUIRED"}  # two levels down
    assert "NOT_AUTHENTICATED" in _codes(responses["401"])
    assert _codes(responses["404"]) == {"NOT_FOUND"} and _codes(responses["409"]) == {"CONFLICT"}
    assert _codes(responses["422"]) == {"VALIDATION_ERROR"}
    optional = doc["paths"]["/maybe"]["get"]
    assert optional["security"] == [{"bearerAuth": []}, {}]  # a token is optional, checked when given
    assert _codes(optional["responses"]["401"]) == {
        "INVALID_TOKEN",
        "MALFORMED_AUTHORIZATION",
        "USER_DELETED",
        "USER_NOT_FOUND",
    }


async def test_a_405_lists_every_method_the_path_answers(make_client):
    """Starlette's 405 names only the first route of the path; the factory's names them all, so
    `Allow` agrees with the document (GET and POST on one path are two routes)."""

    def build(env):
        router = APIRouter()

        @router.post("/things", status_code=201)
        async def add_thing():
            return {}

        @router.get("/things")
        async def things():
            return []

        settings = ServiceSettings(service_name="probe")
        return create_app(service="probe", settings=settings, routers=[router], outbox=False)

    async with make_client(build) as client:
        for method in ("PUT", "OPTIONS", "DELETE"):
            r = await client.request(method, "/things")
            assert r.status_code == 405
            assert r.headers["allow"] == "GET, POST"
            assert r.json()["detail"]["code"] == "METHOD_NOT_ALLOWED"
        assert (await client.get("/things")).status_code == 200


async def test_a_405_on_a_concrete_path_names_its_own_methods(make_client):
    """As OpenAPI matches paths, /things/upload is its own resource, not the thing "upload" of
    /things/{thing_id}: its 405 names POST only, as the document does."""

    def build(env):
        router = APIRouter()

        @router.post("/things/upload", status_code=201)
        async def upload():
            return {}

        @router.get("/things/{thing_id}")
        async def thing(thing_id: str):
            return {"id": thing_id}

        @router.delete("/things/{thing_id}", status_code=204)
        async def delete_thing(thing_id: str):
            return None

        settings = ServiceSettings(service_name="probe")
        return create_app(service="probe", settings=settings, routers=[router], outbox=False)

    async with make_client(build) as client:
        r = await client.request("PUT", "/things/upload")
        assert r.status_code == 405 and r.headers["allow"] == "POST"
        r = await client.request("PUT", "/things/x")
        assert r.status_code == 405 and r.headers["allow"] == "DELETE, GET"
