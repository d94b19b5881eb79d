"""Hostile input on every route of all seven services (issue 18): each service runs in-process with
its real lifespan (as the conformance test builds it), and every operation of its OpenAPI document
(not a hand list) gets

- an oversized body, announced (Content-Length) and streamed (chunked): 413 PAYLOAD_TOO_LARGE;
- JSON nested 100,000 levels deep: 400/422, never a RecursionError turned 500;
- invalid UTF-8 inside a JSON body: 400 INVALID_JSON;
- on protected routes, bad tokens: forged signature, expired, `alg=none`, no `sub`, a `sub` that is
  not a user id (garbage string, number, object): 401 with the usual envelope;
- a validly signed token of a user who does not exist: 401 USER_NOT_FOUND on every user route of every
  service (Auth reads its table; the others ask a real Auth process once, shared.known_users), and
  nothing created. The valid token of the other cases belongs to a real user (a guest made in Auth).

Every answer must be a JSON envelope `{"detail": {"code", "message"}}` (or a success), never 5xx;
and no row appears or disappears in any table of the service's databases (found from the
catalogue) while the refused requests run. The WebSocket /rooms/{id}/doc gets the same bad tokens.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
import time
import uuid

import asyncpg
import httpx
import pytest
import pytest_asyncio
from jose import jwt

from shared.auth import AUDIENCE, mint_access_token
from shared.migrate import migrate
from shared.testing.plugin import build_service_env, isolated_infra
from shared.testing.processes import ServiceProcess
from tests.shared.documents import SERVICES
from tests.shared.test_openapi_conformance import _service_overrides

pytestmark = pytest.mark.asyncio(loop_scope="session")

DEPTH = 100_000
_BODY_METHODS = {"post", "put", "patch", "delete"}
# Each service's databases (the environment variable naming each); Auth and Payment live in the core one.
_DATABASES = {
    "auth": ["DATABASE_URL"],
    "payment": ["DATABASE_URL"],
    "content": ["DATABASE_URL"],
    "chat": ["CHAT_DATABASE_URL", "DATABASE_URL"],
    "media": ["MEDIA_DATABASE_URL", "DATABASE_URL"],
    "community": ["COMMUNITY_DATABASE_URL", "DATABASE_URL"],
    "analytics": ["ANALYTICS_DATABASE_URL", "DATABASE_URL"],
}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def auth(infra, run_id, tmp_path_factory):
    """A real Auth process that the other services ask whether a token's user exists; on databases
    and a vhost of its own, so its consumer and housekeeping never change the rows counted here."""
    tag = f"{run_id}hau"
    async with isolated_infra(infra, tag) as (dsns, amqp_url):
        env = {
            **build_service_env(infra, tag, dsns, amqp_url, None),
            "EMAIL_BACKEND": "file",
            "EMAIL_OUTBOX_DIR": str(tmp_path_factory.mktemp("hostile-mail")),
            "RATE_LIMIT_GUEST_PER_MINUTE": "100000",
        }
        with ServiceProcess("auth", env, log_dir=tmp_path_factory.mktemp("hostile-auth")) as proc:
            yield proc


async def real_user(auth) -> str:
    """A user Auth has (a guest): the id the "valid" tokens name. `auth`: the Auth process, or an
    in-process Auth's client (whose database is the one its routes read)."""
    client = auth if isinstance(auth, httpx.AsyncClient) else httpx.AsyncClient(base_url=auth.url, timeout=30)
    async with contextlib.nullcontext(client) if client is auth else client:
        r = await client.post("/guest")
        assert r.status_code == 201, r.text
        me = await client.get("/users/me", headers={"Authorization": f"Bearer {r.json()['access_token']}"})
    return me.json()["id"]


def known_users_on(auth) -> dict[str, str]:
    return {"KNOWN_USERS_CHECK": "1", "AUTH_SERVICE_URL": auth.url}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(user_id: str | None, **changes) -> dict:
    now = int(time.time())
    claims = {"aud": AUDIENCE, "role": "authenticated", "iat": now, "exp": now + 600, "app_metadata": {"tier": 2}}
    if user_id is not None:
        claims["sub"] = user_id
    claims.update(changes)
    return claims


def bad_tokens(secret: str) -> dict[str, str]:
    """name -> a token every protected route must refuse with 401."""
    user_id = str(uuid.uuid4())
    unsigned = (
        _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode()) + "." + _b64(json.dumps(_claims(user_id)).encode())
    )
    return {
        "forged signature": mint_access_token("not-the-secret-" + "x" * 32, user_id=user_id, tier=2),
        "expired": mint_access_token(secret, user_id=user_id, tier=2, expires_in=-3600),
        "alg none": unsigned + ".",
        "alg none, no signature part": unsigned,
        "alg none, signature kept": unsigned + "." + mint_access_token(secret, user_id=user_id).rsplit(".", 1)[1],
        "no sub": jwt.encode(_claims(None), secret, algorithm="HS256"),
        "empty sub": jwt.encode(_claims(""), secret, algorithm="HS256"),
        "garbage sub": jwt.encode(_claims("not-a-user-id'; DROP TABLE users; --"), secret, algorithm="HS256"),
        "numeric sub": jwt.encode(_claims(12345), secret, algorithm="HS256"),
        "object sub": jwt.encode(_claims({"id": user_id}), secret, algorithm="HS256"),
        "huge sub": jwt.encode(_claims("a" * 20_000), secret, algorithm="HS256"),
        "service sub without service role": jwt.encode(_claims("service:tests"), secret, algorithm="HS256"),
        "not a jwt": "not-a-token",
        "three garbage parts": "a.b.c",
    }


def _concrete(path: str, operation: dict) -> str:
    """The path with every parameter filled with a well-formed id no one has."""
    parameters = [p for p in operation.get("parameters", []) if p["in"] == "path"]
    kinds = {p["name"]: (p.get("schema") or {}).get("type") for p in parameters}

    def fill(match: re.Match) -> str:
        return "1" if kinds.get(match.group(1)) == "integer" else str(uuid.uuid4())

    return re.sub(r"\{([^}:]+)(?::[^}]*)?\}", fill, path)


def operations(document: dict):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in {"get", "post", "put", "patch", "delete"}:
                yield path, method, operation


def _json_body(operation: dict) -> bool:
    return "application/json" in (operation.get("requestBody") or {}).get("content", {})


def envelope_problem(r) -> str | None:
    """Why the answer is not a clear 4xx envelope (None when it is)."""
    if r.status_code >= 500:
        return f"{r.status_code}: {r.text[:300]}"
    if r.status_code < 400:
        return None
    try:
        detail = r.json()["detail"]
    except (ValueError, KeyError, TypeError):
        return f"{r.status_code} without the JSON envelope: {r.text[:300]}"
    if not (isinstance(detail, dict) and all(isinstance(detail.get(key), str) for key in ("code", "message"))):
        return f"{r.status_code} without code and message: {r.text[:300]}"
    return None


async def row_counts(dsns: list[str]) -> dict[str, int]:
    counts = {}
    for dsn in dsns:
        conn = await asyncpg.connect(dsn)
        try:
            tables = await conn.fetch(
                "SELECT table_schema, table_name FROM information_schema.tables "
                "WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')"
            )
            for t in tables:
                name = f'"{t["table_schema"]}"."{t["table_name"]}"'
                counts[f"{dsn.rsplit('/', 1)[-1]}:{name}"] = await conn.fetchval(f"SELECT count(*) FROM {name}")
        finally:
            await conn.close()
    return counts


class Findings(list):
    def check(self, what: str, r, *, status: set[int] | None = None, code: str | None = None) -> None:
        problem = envelope_problem(r)
        if problem is None and status is not None and r.status_code not in status:
            problem = f"{r.status_code} (expected {sorted(status)}): {r.text[:200]}"
        if problem is None and code is not None and r.json()["detail"]["code"] != code:
            problem = f"code {r.json()['detail']['code']} (expected {code})"
        if problem is not None:
            self.append(f"{what}: {problem}")


@pytest.mark.parametrize("service", SERVICES)
async def test_every_route_refuses_hostile_input_with_a_4xx_envelope(
    service, make_client, service_env, sandbox, tokens, tmp_path_factory, auth, infra, run_id
):
    # Databases and a vhost of the service's own, like Auth's above: on the run's shared ones its
    # consumer would drain what other tests published (Analytics takes every event) while the rows
    # are counted.
    tag = f"{run_id}h{service[:3]}"
    async with isolated_infra(infra, tag) as (own_dsns, own_amqp):
        overrides = {
            **build_service_env(infra, tag, own_dsns, own_amqp, sandbox),
            # The run's blob container (deleted at the end of the session), not one per service here.
            "AZURE_STORAGE_CONTAINER": service_env["AZURE_STORAGE_CONTAINER"],
            **_service_overrides(service, sandbox, tmp_path_factory.mktemp(f"hostile-{service}")),
            **known_users_on(auth),
        }
        await _refuses_hostile_input(service, make_client, overrides, tokens, auth)


async def _refuses_hostile_input(service, make_client, overrides, tokens, auth):
    env = overrides
    if service in ("chat", "media"):
        await migrate(env["DATABASE_URL"], "payment")  # quota reservations use Payment's SQL functions
    dsns = [env[name] for name in _DATABASES[service]]
    findings = Findings()
    async with make_client(service, **overrides) as client:
        document = client.app.openapi()
        max_body = client.app.state.settings.max_body_bytes
        valid = tokens.headers(tokens.user(await real_user(client if service == "auth" else auth), tier=2))
        service_token = tokens.headers(tokens.service())
        forged = {name: tokens.headers(token) for name, token in bad_tokens(tokens.secret).items()}
        await asyncio.sleep(0.5)  # start-up work (seeding, the relay's first pass) settles first
        before = await row_counts(dsns)
        for path, method, operation in operations(document):
            url = _concrete(path, operation)
            what = f"{service} {method.upper()} {path}"
            security = operation.get("security") or []
            protected = bool(security)  # a token is checked when given, also where it is optional
            has_body = "requestBody" in operation
            for_services = "SERVICE_TOKEN_REQUIRED" in json.dumps(operation.get("responses", {}).get("403", {}))
            auth = (service_token if for_services else valid) if protected else {}
            as_json = {**auth, "content-type": "application/json"}

            if method in _BODY_METHODS:
                oversized = b"x" * (max_body + 1)
                r = await client.request(method, url, content=oversized, headers=as_json)
                findings.check(f"{what} oversized body", r, status={413}, code="PAYLOAD_TOO_LARGE")

            # A route that takes no body never reads a streamed one (nor parses it): these are for bodies.
            if has_body:
                kinds = (operation["requestBody"].get("content") or {}).keys()
                multipart = "application/json" not in kinds
                streamed_type = "multipart/form-data; boundary=x" if multipart else "application/json"

                async def chunks(multipart: bool = multipart):
                    if multipart:  # a well-formed start, so the parser keeps reading the endless file part
                        yield b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n'
                    for _ in range(max_body // 65536 + 2):
                        yield b"y" * 65536

                r = await client.request(method, url, content=chunks(), headers={**auth, "content-type": streamed_type})
                # A route may stop earlier at its own, smaller limit (Media's JSON bodies): still a 413.
                findings.check(f"{what} oversized chunked body", r, status={413})

                for shape, body in {
                    "deep array": "[" * DEPTH + "]" * DEPTH,
                    "deep object": '{"a":' * DEPTH + "1" + "}" * DEPTH,
                }.items():
                    r = await client.request(method, url, content=body, headers=as_json)
                    if _json_body(operation):  # parsed first: invalid JSON (413 past a route's own limit)
                        invalid_json = "INVALID_JSON" if r.status_code == 400 else None
                        findings.check(f"{what} {shape}", r, status={400, 413}, code=invalid_json)
                    else:
                        findings.check(f"{what} {shape}", r, status={400, 415, 422})

                invalid_utf8 = b'{"name": "\xff\xfe\xfd", "text": "\xc3\x28"}'
                r = await client.request(method, url, content=invalid_utf8, headers=as_json)
                if _json_body(operation):
                    findings.check(f"{what} invalid UTF-8", r, status={400}, code="INVALID_JSON")
                else:
                    findings.check(f"{what} invalid UTF-8", r)

            # Routes without security (sign-up, guest, webhooks) ignore an Authorization header.
            if protected:
                for name, headers in forged.items():
                    r = await client.request(method, url, headers=headers)
                    findings.check(f"{what} token {name}", r, status={401})
        after = await row_counts(dsns)

        # A signed token of a user no one has: every service refuses it (Auth from its table, the
        # others through shared.known_users), and nothing is created. Auth's routes where a token
        # is optional (sign-up, guest) do not look it up.
        unknown = tokens.headers(tokens.user(str(uuid.uuid4())))
        for path, method, operation in operations(document):
            security = operation.get("security") or []
            for_services = "SERVICE_TOKEN_REQUIRED" in json.dumps(operation.get("responses", {}).get("403", {}))
            if not security or for_services:
                continue
            what = f"{service} {method.upper()} {path} unknown user"
            r = await client.request(method, _concrete(path, operation), headers=unknown)
            if service != "auth" or {} not in security:
                findings.check(what, r, status={401}, code="USER_NOT_FOUND")
            else:
                findings.check(what, r)
        after = await row_counts(dsns)
    changed = {
        table: (before.get(table), after.get(table))
        for table in before.keys() | after.keys()
        if before.get(table) != after.get(table)
    }
    assert not findings, "\n".join(findings)
    assert not changed, f"rows changed while refusing hostile input: {changed}"


async def _handshake(app, room_id: str, *, token: str | None, as_subprotocol: bool, denial: bool) -> tuple[int, dict]:
    """One WebSocket handshake on /rooms/{id}/doc straight through the ASGI app: (status, envelope)
    from the denial response when the server offers that extension (uvicorn does), else
    (close code - 4000, {"code": reason})."""
    subprotocols = ["yjs", f"bearer.{token}"] if token is not None and as_subprotocol else ["yjs"]
    query = f"token={token}" if token is not None and not as_subprotocol else ""
    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "scheme": "ws",
        "http_version": "1.1",
        "path": f"/rooms/{room_id}/doc",
        "raw_path": f"/rooms/{room_id}/doc".encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"testserver")],
        "subprotocols": subprotocols,
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
        "extensions": {"websocket.http.response": {}} if denial else {},
        "state": {},
    }
    sent: list[dict] = []
    incoming: asyncio.Queue = asyncio.Queue()
    await incoming.put({"type": "websocket.connect"})

    async def send(message):
        sent.append(message)
        if message["type"] in ("websocket.accept", "websocket.close") or (
            message["type"] == "websocket.http.response.body" and not message.get("more_body")
        ):
            await incoming.put({"type": "websocket.disconnect", "code": 1000})

    await asyncio.wait_for(app(scope, incoming.get, send), 10)
    kinds = [m["type"] for m in sent]
    if "websocket.accept" in kinds:
        return 101, {}
    if "websocket.http.response.start" in kinds:
        status = next(m["status"] for m in sent if m["type"] == "websocket.http.response.start")
        body = b"".join(m.get("body", b"") for m in sent if m["type"] == "websocket.http.response.body")
        return status, json.loads(body)["detail"]
    close = next(m for m in sent if m["type"] == "websocket.close")
    return close["code"] - 4000, {"code": close.get("reason"), "message": close.get("reason")}


async def test_room_document_socket_refuses_bad_tokens(make_client, sandbox, tokens, tmp_path_factory, auth):
    overrides = {
        **_service_overrides("community", sandbox, tmp_path_factory.mktemp("hostile-rooms")),
        **known_users_on(auth),
    }
    async with make_client("community", **overrides) as client:
        app = client.app
        cases = {**bad_tokens(tokens.secret), "none": None}
        for room_id in (str(uuid.uuid4()), "not-a-room"):
            for name, token in cases.items():
                for as_subprotocol in (True, False):
                    for denial in (True, False):
                        if token is None and as_subprotocol:
                            continue
                        status, detail = await _handshake(
                            app, room_id, token=token, as_subprotocol=as_subprotocol, denial=denial
                        )
                        where = f"{name} (subprotocol={as_subprotocol}, denial={denial}, room={room_id})"
                        assert status == 401, f"{where}: {status} {detail}"
                        assert detail["code"] in {"INVALID_TOKEN", "NOT_AUTHENTICATED"}, f"{where}: {detail}"
            # A signed token of no one: refused as such (shared.known_users), before any room is read.
            status, detail = await _handshake(
                app, room_id, token=tokens.user(str(uuid.uuid4())), as_subprotocol=True, denial=True
            )
            assert status == 401 and detail["code"] == "USER_NOT_FOUND", detail
        # A real user who is not a member: 404 (never a 5xx).
        status, detail = await _handshake(
            app, str(uuid.uuid4()), token=tokens.user(await real_user(auth)), as_subprotocol=True, denial=True
        )
        assert status == 404 and detail["code"], detail
