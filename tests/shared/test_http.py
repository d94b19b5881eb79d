"""The error envelope, bad input, body limits, legacy prefixes and rate limits across instances."""

import asyncio
import time

import pytest

from tests.shared.apps import build_probe_app

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def inside_one_window(seconds_needed: float = 15):
    """Fixed 60 s windows: start a counting test where it cannot straddle a window boundary."""
    into = time.time() % 60
    if into > 60 - seconds_needed:
        await asyncio.sleep(60 - into + 0.1)


@pytest.fixture
async def client(make_client):
    async with make_client(build_probe_app) as c:
        yield c


async def test_non_json_body_gets_400_json(client, tokens):
    r = await client.post(
        "/items", content=b"{not json", headers={**tokens.headers(tokens.user()), "content-type": "application/json"}
    )
    assert r.status_code == 400
    assert r.json()["detail"]["code"] == "INVALID_JSON"


async def test_wrong_types_get_422_with_the_fields(client, tokens):
    r = await client.post("/items", json={"name": "", "count": "many"}, headers=tokens.headers(tokens.user()))
    assert r.status_code == 422
    body = r.json()["detail"]
    assert body["code"] == "VALIDATION_ERROR"
    assert {tuple(e["loc"]) for e in body["errors"]} == {("body", "name"), ("body", "count")}


async def test_oversized_body_gets_413(client, tokens):
    r = await client.post(
        "/items",
        content=b"x" * (1024 * 1024 + 1),
        headers={**tokens.headers(tokens.user()), "content-type": "application/json"},
    )
    assert r.status_code == 413
    assert r.json()["detail"]["code"] == "PAYLOAD_TOO_LARGE"


async def test_oversized_chunked_body_gets_413(client, tokens):
    async def chunks():
        for _ in range(20):
            yield b"y" * 65536

    r = await client.post(
        "/items", content=chunks(), headers={**tokens.headers(tokens.user()), "content-type": "application/json"}
    )
    assert r.status_code == 413


async def test_unknown_route_and_method_use_the_envelope(client):
    r = await client.get("/nope")
    assert r.status_code == 404 and r.json()["detail"]["code"] == "NOT_FOUND"
    r = await client.delete("/public")
    assert r.status_code == 405 and r.json()["detail"]["code"] == "METHOD_NOT_ALLOWED"


async def test_unhandled_error_is_a_500_without_a_stack_trace(client):
    r = await client.get("/boom")
    assert r.status_code == 500
    assert r.json() == {"detail": {"code": "INTERNAL_ERROR", "message": "Something went wrong on our side."}}
    assert "internal detail" not in r.text


async def test_legacy_prefix_serves_the_same_routes(client):
    assert (await client.get("/api/probe/public")).json() == {"ok": True}
    assert "/api/probe/public" not in (await client.get("/openapi.json")).json()["paths"]


async def test_request_id_is_echoed(client):
    r = await client.get("/public", headers={"X-Request-ID": "abc123"})
    assert r.headers["x-request-id"] == "abc123"


async def test_server_timing_says_how_long_the_service_took(client):
    r = await client.get("/public")
    name, _, duration = r.headers["server-timing"].partition(";dur=")
    assert name == "app" and 0 <= float(duration) < 5000


async def test_rate_limit_holds_across_two_instances(make_client, tokens):
    await inside_one_window()
    user = tokens.headers(tokens.user())
    async with make_client(build_probe_app) as a, make_client(build_probe_app) as b:
        assert a.app is not b.app
        statuses = []
        for i in range(8):
            r = await (a if i % 2 == 0 else b).get("/limited", headers=user)
            statuses.append(r.status_code)
        assert statuses[:5] == [200] * 5
        assert statuses[5:] == [429] * 3
        r = await b.get("/limited", headers=user)
        assert r.json()["detail"]["code"] == "RATE_LIMITED"
        assert 1 <= int(r.headers["retry-after"]) <= 60
        # Another user has a separate budget.
        assert (await a.get("/limited", headers=tokens.headers(tokens.user()))).status_code == 200


async def test_rate_limit_is_atomic_under_concurrency(make_client, tokens):
    await inside_one_window()
    user = tokens.headers(tokens.user())
    async with make_client(build_probe_app) as a, make_client(build_probe_app) as b:
        results = await asyncio.gather(*[(a if i % 2 else b).get("/limited", headers=user) for i in range(30)])
        assert sum(r.status_code == 200 for r in results) == 5
        assert sum(r.status_code == 429 for r in results) == 25


async def test_leased_limits_never_admit_more_than_the_limit_across_instances(make_client, tokens, caplog):
    await inside_one_window()
    user = tokens.headers(tokens.user())
    async with (
        make_client(build_probe_app, rate_limit_per_minute=100) as a,
        make_client(build_probe_app, rate_limit_per_minute=100) as b,
    ):
        results = []
        for _burst in range(8):
            results += await asyncio.gather(*[(a if i % 3 else b).get("/public", headers=user) for i in range(20)])
        assert "rate limit skipped" not in caplog.text  # Redis answered every time: no fail-open
        admitted = sum(r.status_code == 200 for r in results)
        # Never over the limit; at most one lease's remainder (4) per instance refused early.
        assert 92 <= admitted <= 100, admitted
        assert all(r.status_code in (200, 429) for r in results)


async def test_anonymous_requests_are_limited_by_address(make_client):
    await inside_one_window()
    async with make_client(build_probe_app) as a:
        statuses = [(await a.get("/limited")).status_code for _ in range(7)]
        assert statuses.count(200) == 5 and statuses.count(429) == 2


async def test_default_limit_applies_to_every_route(make_client, tokens):
    await inside_one_window()
    user = tokens.headers(tokens.user())
    async with make_client(build_probe_app, rate_limit_per_minute=3) as a:
        statuses = [(await a.get("/public", headers=user)).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        # Health probes are never limited.
        assert [(await a.get("/health")).status_code for _ in range(5)] == [200] * 5


async def test_rate_limit_fails_open_when_redis_is_down(make_client, tokens):
    async with make_client(build_probe_app, redis_url="redis://127.0.0.1:1/0") as a:
        r = await a.get("/limited", headers=tokens.headers(tokens.user()))
        assert r.status_code == 200
        ready = await a.get("/health/ready")
        assert ready.status_code == 503 and ready.json()["checks"]["redis"].startswith("error")


async def test_cors_answers_browsers_and_preflights(client, tokens):
    r = await client.get("/public", headers={"Origin": "https://app.scenextras.com"})
    assert r.headers["access-control-allow-origin"] == "*"
    assert "x-request-id" in r.headers["access-control-expose-headers"].lower()
    pre = await client.options(
        "/items",
        headers={
            "Origin": "https://app.scenextras.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert pre.status_code == 200 and "POST" in pre.headers["access-control-allow-methods"]
    # Without an Origin (mobile apps, webhooks, services) no CORS headers are added.
    assert "access-control-allow-origin" not in (await client.get("/public")).headers


async def test_concurrent_users_share_redis_calls_and_each_keeps_its_own_budget(make_client, tokens):
    """Lease fetches asked for in the same event-loop turn go to Redis as one script call
    (shared.ratelimit._LeaseBatcher); every user still gets exactly their limit."""
    await inside_one_window()
    users = [tokens.headers(tokens.user()) for _ in range(20)]
    async with make_client(build_probe_app) as a:
        redis = a.app.state.redis
        real_evalsha = redis.evalsha
        calls = 0

        async def counted_evalsha(*args, **kwargs):  # counts the real calls, Redis still answers them
            nonlocal calls
            calls += 1
            return await real_evalsha(*args, **kwargs)

        redis.evalsha = counted_evalsha
        results = await asyncio.gather(*[a.get("/limited", headers=user) for user in users for _ in range(7)])
        by_user: dict[int, list[int]] = {}
        for i, r in enumerate(results):
            by_user.setdefault(i // 7, []).append(r.status_code)
        assert all(sorted(statuses) == [200] * 5 + [429] * 2 for statuses in by_user.values()), by_user
        # 140 requests, each needing the default and the route limit: far fewer calls than requests.
        assert 0 < calls < len(results) / 2, calls
