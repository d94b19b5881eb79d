"""shared/quota.py and shared/tiers.py against Payment's SQL functions in a real core database."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
import pytest_asyncio

from shared import db as dbmod
from shared.auth import user_from_claims
from shared.migrate import migrate
from shared.quota import InsufficientQuota, QuotaClient
from shared.redis import Keys, create_redis
from shared.testing.poll import holding, lock_waiters
from shared.tiers import QUOTA_TYPES, TIER_QUOTAS, TierResolver, drop_cached_tier, set_cached_tier


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def core(databases):
    await migrate(databases["core"], "payment")
    pool = await dbmod.create_pool(databases["core"], min_size=2, max_size=20)
    yield pool
    await pool.close()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def redis(service_env):
    client = create_redis(service_env["REDIS_URL"])
    yield client
    await client.aclose()


@pytest.fixture(scope="module")
def keys(service_env):
    return Keys(service_env["REDIS_PREFIX"] + "-quota-tests")


@pytest.fixture
def quota(core, redis, keys):
    return QuotaClient(core, redis, keys)


def new_user() -> str:
    return str(uuid.uuid4())


async def test_tier_table_matches_shared_tiers(core):
    rows = await core.fetch("SELECT tier, quota_type, allowance FROM tier_quotas")
    from_db = {}
    for r in rows:
        from_db.setdefault(r["tier"], {})[r["quota_type"]] = r["allowance"]
    assert from_db == TIER_QUOTAS
    assert set(QUOTA_TYPES) == set(TIER_QUOTAS[0])


async def test_missing_row_is_created_free_and_reserve_counts_down(quota, core):
    user = new_user()
    r1 = await quota.reserve(user, "regular")
    assert r1.reservation_id and r1.remaining == 4 and r1.reset_at is not None
    row = await core.fetchrow("SELECT tier, period, quota FROM user_quotas WHERE user_id = $1", uuid.UUID(user))
    assert dict(row) == {"tier": 0, "period": "daily", "quota": 4}
    # The free reset is the next UTC midnight.
    now = datetime.now(UTC)
    assert r1.reset_at == datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)


async def test_fifty_concurrent_reserves_with_five_left_give_exactly_five(quota, core):
    user = new_user()
    results = await asyncio.gather(*(quota.reserve(user, "regular") for _ in range(50)), return_exceptions=True)
    ok = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, InsufficientQuota)]
    assert len(ok) == 5 and len(refused) == 45
    assert len({r.reservation_id for r in ok}) == 5
    assert sorted(r.remaining for r in ok) == [0, 1, 2, 3, 4]
    assert await core.fetchval("SELECT quota FROM user_quotas WHERE user_id = $1", uuid.UUID(user)) == 0
    err = refused[0]
    assert err.status == 402 and err.body()["detail"]["code"] == "INSUFFICIENT_QUOTA"
    assert err.body()["detail"]["quota_type"] == "regular" and err.body()["detail"]["remaining"] == 0
    assert err.body()["detail"]["reset_at"].endswith("Z")


async def _reserve_all_at_once(core, redis, keys, user: str, quota_type: str, amounts: list[int]):
    """One reserve per amount, each from its own QuotaClient (as many service instances), each on
    its own connection, all released at the same moment: a transaction holds the user's existing
    quota row until every reserve is inside the database waiting for it. Returns the results."""
    clients = [QuotaClient(core, redis, keys) for _ in amounts]
    holds_row = "SELECT 1 FROM user_quotas WHERE user_id = $1 FOR UPDATE"
    async with holding(core, holds_row, uuid.UUID(user)) as release_when_waiting:
        calls = [asyncio.ensure_future(c.reserve(user, quota_type, a)) for c, a in zip(clients, amounts, strict=True)]
        await release_when_waiting("quota_reserve(", len(amounts))
    return await asyncio.gather(*calls, return_exceptions=True)


async def test_reserves_on_many_connections_against_an_existing_row_give_exactly_what_remains(core, redis, keys):
    """The row exists already (no creation lock to serialise on): only the row lock of
    quota_lock_row keeps twelve simultaneous reserves from all reading "5 left"."""
    user = await _fresh_user(core)
    results = await _reserve_all_at_once(core, redis, keys, user, "regular", [1] * 12)
    unexpected = [r for r in results if isinstance(r, BaseException) and not isinstance(r, InsufficientQuota)]
    assert unexpected == []
    ok = [r for r in results if not isinstance(r, BaseException)]
    assert len(ok) == 5 and sorted(r.remaining for r in ok) == [0, 1, 2, 3, 4]
    assert all(r.remaining == 0 for r in results if isinstance(r, InsufficientQuota))
    assert await core.fetchval("SELECT quota FROM user_quotas WHERE user_id = $1", uuid.UUID(user)) == 0
    held = await core.fetchval(
        "SELECT count(*) FROM quota_reservations WHERE user_id = $1 AND state = 'held'", uuid.UUID(user)
    )
    assert held == 5


async def test_concurrent_mixed_amounts_never_overspend(core, redis, keys):
    """Fifteen reserves of different sizes, on fifteen connections at once, against 100 premium."""
    user = await _fresh_user(core, 1)  # pro: 100 premium
    amounts = [7, 13, 1, 29, 3, 17, 11, 5, 23, 19, 2, 31, 4, 37, 6]  # 208 asked for
    results = await _reserve_all_at_once(core, redis, keys, user, "premium", amounts)
    unexpected = [r for r in results if isinstance(r, BaseException) and not isinstance(r, InsufficientQuota)]
    assert unexpected == []
    granted = [r for r in results if not isinstance(r, BaseException)]
    refused = [(a, r) for a, r in zip(amounts, results, strict=True) if isinstance(r, InsufficientQuota)]
    spent = sum(r.amount for r in granted)
    left = await core.fetchval("SELECT quota_premium_model FROM user_quotas WHERE user_id = $1", uuid.UUID(user))
    assert refused and spent + left == 100 and left >= 0
    # Each refusal saw less than it asked for, and nothing was given back since: what is left now
    # is below every refused amount (a lost update would leave room, or go below zero).
    assert all(err.remaining < a for a, err in refused)
    assert left < min(a for a, _ in refused)
    # Every grant's answer is what it left: all different, the smallest is what is left now.
    assert len({r.remaining for r in granted}) == len(granted) and min(r.remaining for r in granted) == left
    held = await core.fetchval(
        "SELECT coalesce(sum(amount), 0) FROM quota_reservations WHERE user_id = $1", uuid.UUID(user)
    )
    assert held == spent


async def test_batches_taking_users_in_opposite_orders_do_not_deadlock(core):
    """Two quota_reserve_many() calls name the same two users in opposite orders. A transaction
    holds the reservations table (SHARE: reads go on, inserts wait), so each call stops right
    after locking and charging the row of its first item; both are released once both wait.
    Taking rows in the callers' order, each would then hold one row and want the other's (40P01);
    in user-id order the second call waits for the first call's first row instead."""
    a, b = await _fresh_user(core), await _fresh_user(core)
    ua, ub = uuid.UUID(a), uuid.UUID(b)
    sql = "SELECT * FROM quota_reserve_many($1::uuid[], $2::text[], $3::int[])"
    first, second = await core.acquire(), await core.acquire()
    try:
        async with holding(core, "LOCK TABLE quota_reservations IN SHARE MODE") as release_when_waiting:
            calls = [
                asyncio.ensure_future(first.fetch(sql, [ua, ub], ["regular", "regular"], [1, 2])),
                asyncio.ensure_future(second.fetch(sql, [ub, ua], ["regular", "regular"], [1, 2])),
            ]
            await release_when_waiting("quota_reserve_many", 2)
        rows_first, rows_second = await asyncio.gather(*calls)
    finally:
        for conn in (first, second):
            await core.release(conn)
    for rows in (rows_first, rows_second):
        assert [(r["error_code"], r["error_message"]) for r in rows] == [(None, None)] * 2
        assert all(r["reservation_id"] is not None for r in rows)
    # Each user: 1 + 2 from the two calls, out of 5.
    for u in (ua, ub):
        assert await core.fetchval("SELECT quota FROM user_quotas WHERE user_id = $1", u) == 2


async def test_settle_charges_actual_and_gives_back_rest_idempotently(quota, core):
    user = new_user()
    await core.execute("SELECT quota_reset($1::uuid, 1)", uuid.UUID(user))
    r = await quota.reserve(user, "premium", 10)
    assert r.remaining == 90
    await quota.settle(r.reservation_id, 4)
    await quota.settle(r.reservation_id, 1)  # second settle changes nothing
    await quota.release(r.reservation_id)  # nor does a release after it
    row = await core.fetchrow(
        "SELECT quota_premium_model, premium_tokens_used FROM user_quotas WHERE user_id = $1", uuid.UUID(user)
    )
    assert dict(row) == {"quota_premium_model": 96, "premium_tokens_used": 4}
    # Charging more than reserved charges only what was reserved.
    r2 = await quota.reserve(user, "premium", 2)
    await quota.settle(r2.reservation_id, 50)
    assert await core.fetchval("SELECT quota_premium_model FROM user_quotas WHERE user_id = $1", uuid.UUID(user)) == 94


async def test_release_gives_everything_back_once(quota, core):
    user = new_user()
    r = await quota.reserve(user, "regular", 3)
    await quota.release(r.reservation_id)
    await quota.release(r.reservation_id)
    await quota.settle(r.reservation_id)
    assert await core.fetchval("SELECT quota FROM user_quotas WHERE user_id = $1", uuid.UUID(user)) == 5
    state = await core.fetchval("SELECT state FROM quota_reservations WHERE id = $1", uuid.UUID(r.reservation_id))
    assert state == "released"


async def test_reserved_context_settles_on_success_and_releases_on_error(quota, core):
    user = new_user()
    async with quota.reserved(user, "regular", 2) as res:
        res.actual = 1
    with pytest.raises(RuntimeError):
        async with quota.reserved(user, "regular", 2):
            raise RuntimeError("the LLM failed")
    assert await core.fetchval("SELECT quota FROM user_quotas WHERE user_id = $1", uuid.UUID(user)) == 4
    states = await core.fetch(
        "SELECT state, charged FROM quota_reservations WHERE user_id = $1 ORDER BY created_at", uuid.UUID(user)
    )
    assert [(s["state"], s["charged"]) for s in states] == [("settled", 1), ("released", 0)]


async def test_reserved_several_types_is_all_or_nothing_and_zero_actual_is_a_release(quota, core):
    user = new_user()
    async with quota.reserved(user, []) as none:  # nothing to reserve: nothing settled
        assert none == []
    # Free has no premium: the regular reserved first is given back before the 402 propagates.
    with pytest.raises(InsufficientQuota) as refused:
        async with quota.reserved(user, ["regular", "premium"]):
            raise AssertionError("the block must not run")
    assert refused.value.quota_type == "premium"
    async with quota.reserved(user, ["regular", "story"]) as (regular, story):
        assert (regular.quota_type, story.quota_type) == ("regular", "story")
        story.actual = 0  # the story produced nothing chargeable
    with pytest.raises(asyncio.CancelledError):
        async with quota.reserved(user, ["regular"]):
            raise asyncio.CancelledError
    states = await core.fetch(
        "SELECT quota_type, state, charged FROM quota_reservations WHERE user_id = $1 ORDER BY created_at",
        uuid.UUID(user),
    )
    assert [tuple(s) for s in states] == [
        ("regular", "released", 0),
        ("regular", "settled", 1),
        ("story", "released", 0),
        ("regular", "released", 0),
    ]
    row = await core.fetchrow("SELECT quota, quota_story FROM user_quotas WHERE user_id = $1", uuid.UUID(user))
    assert dict(row) == {"quota": 4, "quota_story": 1}


async def test_unlimited_always_reserves_with_an_id(quota, core):
    user = new_user()
    await core.execute("SELECT quota_reset($1::uuid, 2)", uuid.UUID(user))
    results = await asyncio.gather(*(quota.reserve(user, "image_gen", 5) for _ in range(20)))
    assert all(r.reservation_id and r.remaining == -1 and r.unlimited for r in results)
    await quota.settle(results[0].reservation_id)
    assert (
        await core.fetchval("SELECT quota_image_generation FROM user_quotas WHERE user_id = $1", uuid.UUID(user)) == -1
    )


async def test_expired_reservation_is_given_back(quota, core):
    user = new_user()
    held = await quota.reserve(user, "regular", 5)
    with pytest.raises(InsufficientQuota):
        await quota.reserve(user, "regular")
    # A worker crashed: the reservation's time runs out.
    await core.execute(
        "UPDATE quota_reservations SET expires_at = now() - interval '1 second' WHERE id = $1",
        uuid.UUID(held.reservation_id),
    )
    again = await quota.reserve(user, "regular")
    assert again.remaining == 4
    assert (
        await core.fetchval("SELECT state FROM quota_reservations WHERE id = $1", uuid.UUID(held.reservation_id))
        == "expired"
    )
    # A late settle of the expired reservation charges nothing more.
    await quota.settle(held.reservation_id)
    assert await core.fetchval("SELECT quota FROM user_quotas WHERE user_id = $1", uuid.UUID(user)) == 4


async def test_global_sweep_expires_reservations(core):
    user = new_user()
    row = await core.fetchrow("SELECT * FROM quota_reserve($1::uuid, 'regular', 2, 0)", uuid.UUID(user))
    assert row["reservation_id"] is not None
    swept = await core.fetch("SELECT u FROM quota_expire_reservations() AS u")
    assert uuid.UUID(user) in [r["u"] for r in swept]
    assert await core.fetchval("SELECT quota FROM user_quotas WHERE user_id = $1", uuid.UUID(user)) == 5


async def test_free_daily_reset_lazy_and_swept(quota, core):
    user = new_user()
    for _ in range(5):
        await quota.reserve(user, "regular")
    with pytest.raises(InsufficientQuota):
        await quota.reserve(user, "regular")
    # Midnight UTC passes.
    await core.execute(
        "UPDATE user_quotas SET reset_at = now() - interval '1 second' WHERE user_id = $1", uuid.UUID(user)
    )
    r = await quota.reserve(user, "regular")
    assert r.remaining == 4
    # The sweeper's path: quota_reset() without a user resets every due free row.
    other = new_user()
    await quota.reserve(other, "regular", 5)
    await core.execute(
        "UPDATE user_quotas SET reset_at = now() - interval '1 second' WHERE user_id = $1", uuid.UUID(other)
    )
    reset = [r["u"] for r in await core.fetch("SELECT u FROM quota_reset() AS u")]
    assert uuid.UUID(other) in reset
    assert await core.fetchval("SELECT quota FROM user_quotas WHERE user_id = $1", uuid.UUID(other)) == 5
    reasons = await core.fetch(
        "SELECT convert_from(body, 'UTF8')::jsonb->'data'->>'reason' AS reason FROM outbox_events"
        " WHERE event_type = 'quota.reset' AND convert_from(body, 'UTF8')::jsonb->>'user_id' = $1 ORDER BY id",
        other,
    )
    assert [r["reason"] for r in reasons] == ["created", "daily"]


async def test_reservation_from_before_a_reset_does_not_overfill(quota, core):
    user = new_user()
    held = await quota.reserve(user, "regular", 3)
    await core.execute(
        "UPDATE user_quotas SET reset_at = now() - interval '1 second' WHERE user_id = $1", uuid.UUID(user)
    )
    await core.fetch("SELECT quota_reset()")
    await quota.release(held.reservation_id)
    assert await core.fetchval("SELECT quota FROM user_quotas WHERE user_id = $1", uuid.UUID(user)) == 5


async def test_bonus_credits_spent_after_allowance_and_survive_reset(quota, core):
    user = new_user()
    assert await core.fetchval("SELECT quota_add_bonus($1::uuid, 3, 'test')", uuid.UUID(user)) == 8
    r = await quota.reserve(user, "regular", 7)
    assert r.remaining == 1
    await quota.release(r.reservation_id)
    r = await quota.reserve(user, "regular", 7)
    await quota.settle(r.reservation_id)
    await core.execute(
        "UPDATE user_quotas SET reset_at = now() - interval '1 second' WHERE user_id = $1", uuid.UUID(user)
    )
    snap = await quota.remaining(user)
    assert snap["regular"]["remaining"] == 6  # 5 daily + 1 bonus left


async def test_depleted_event_is_emitted_once_when_reaching_zero(quota, core):
    user = new_user()
    await quota.reserve(user, "regular", 4)
    await quota.reserve(user, "regular", 1)
    with pytest.raises(InsufficientQuota):
        await quota.reserve(user, "regular", 1)
    n = await core.fetchval(
        "SELECT count(*) FROM outbox_events WHERE event_type = 'quota.depleted'"
        " AND convert_from(body, 'UTF8')::jsonb->>'user_id' = $1",
        user,
    )
    assert n == 1


async def test_bad_input_is_refused_before_the_database(quota):
    with pytest.raises(ValueError):
        await quota.reserve(new_user(), "gold")
    with pytest.raises(ValueError):
        await quota.reserve(new_user(), "regular", -1)


async def test_remaining_is_cached_and_dropped_on_change(quota, redis, keys):
    user = new_user()
    first = await quota.remaining(user)
    assert first["regular"] == {"remaining": 5, "reset_at": first["regular"]["reset_at"]}
    assert first["image_gen"]["remaining"] == 0
    assert await redis.get(keys("quota", user)) is not None
    ttl = await redis.ttl(keys("quota", user))
    assert 0 < ttl <= 300
    await quota.reserve(user, "regular", 2)
    assert await redis.get(keys("quota", user)) is None
    assert (await quota.remaining(user))["regular"]["remaining"] == 3


async def test_settle_drops_the_cache_only_when_it_gives_something_back(quota, core, redis, keys):
    """A reserve takes the whole amount, so a settle charging all of it leaves remaining() as it
    was (the cached answer stays, and is still the database's); one charging less gives the rest
    back, and the cached answer must go."""
    user = new_user()
    await core.execute("SELECT quota_reset($1::uuid, 1)", uuid.UUID(user))  # Pro: premium 100

    async def database_says() -> int:
        row = await core.fetchrow(
            "SELECT remaining FROM quota_snapshot($1::uuid) WHERE quota_type = 'premium'", uuid.UUID(user)
        )
        return row["remaining"]

    full = await quota.reserve(user, "premium", 3)
    assert (await quota.remaining(user))["premium"]["remaining"] == 97  # cached after the reserve
    await quota.settle(full.reservation_id)  # charges all 3
    assert await redis.get(keys("quota", user)) is not None
    assert (await quota.remaining(user))["premium"]["remaining"] == await database_says() == 97

    partial = await quota.reserve(user, "premium", 4)
    assert (await quota.remaining(user))["premium"]["remaining"] == 93
    await quota.settle(partial.reservation_id, 1)  # gives 3 back
    assert await redis.get(keys("quota", user)) is None
    assert (await quota.remaining(user))["premium"]["remaining"] == await database_says() == 96

    await quota.settle(partial.reservation_id, 0)  # already settled: changes nothing, keeps the cache
    assert await redis.get(keys("quota", user)) is not None
    assert (await quota.remaining(user))["premium"]["remaining"] == await database_says() == 96

    nothing = await quota.reserve(user, "premium", 2)
    await quota.remaining(user)
    await quota.settle(nothing.reservation_id, 0)  # charges nothing: all of it back
    assert (await quota.remaining(user))["premium"]["remaining"] == await database_says() == 96


async def test_a_retried_settle_drops_the_cache(quota, core, redis, keys):
    """A settle whose first try lost its connection cannot tell whether that try settled (and gave
    something back) before the connection dropped: it drops the cache whatever it charged."""
    user = new_user()
    await core.execute("SELECT quota_reset($1::uuid, 1)", uuid.UUID(user))
    r = await quota.reserve(user, "premium", 3)
    await quota.remaining(user)
    assert await redis.get(keys("quota", user)) is not None
    holds_reservation = "SELECT 1 FROM quota_reservations WHERE id = $1 FOR UPDATE"
    async with holding(core, holds_reservation, uuid.UUID(r.reservation_id)) as release_when_waiting:
        settling = asyncio.ensure_future(quota.settle(r.reservation_id))  # the whole amount
        await core.execute("SELECT pg_terminate_backend($1)", (await lock_waiters(core, "quota_settle", 1))[0])
        await release_when_waiting("quota_settle", 1)  # its second try
    await settling
    assert await redis.get(keys("quota", user)) is None
    state = await core.fetchval("SELECT state FROM quota_reservations WHERE id = $1", uuid.UUID(r.reservation_id))
    assert state == "settled" and (await quota.remaining(user))["premium"]["remaining"] == 97


async def test_tier_resolver_cache_database_and_token_fallbacks(core, redis, keys, tokens, databases):
    from jose import jwt

    user_id = new_user()
    claims = jwt.get_unverified_claims(tokens.user(user_id, tier=1))
    user = user_from_claims(claims)
    resolver = TierResolver(redis, keys, core)
    # Nothing in the database: free, whatever the token says, and cached.
    assert await resolver(user) == 0
    assert await redis.get(keys("tier", user_id)) == "0"
    await set_cached_tier(redis, keys, user_id, 2)
    assert await resolver(user) == 2
    await drop_cached_tier(redis, keys, user_id)
    await core.execute(
        "INSERT INTO subscriptions (user_id, source, external_id, tier, status, source_updated_at)"
        " VALUES ($1, 'revenuecat', $2, 2, 'active', now())",
        uuid.UUID(user_id),
        user_id,
    )
    assert await resolver(user) == 2
    # Both unreachable: the token's own tier.
    from redis.asyncio import Redis

    dead_redis = Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, socket_timeout=0.2)

    closed_pool = await dbmod.create_pool(databases["core"], min_size=1, max_size=1)
    await closed_pool.close()
    assert await TierResolver(dead_redis, keys, closed_pool)(user) == 1
    assert await TierResolver(dead_redis, keys, closed_pool).with_cached(user, keys("quota", user_id)) == (1, [None])
    await dead_redis.aclose()


async def test_tier_and_quota_snapshot_in_one_read(core, redis, keys, tokens, quota):
    from jose import jwt

    user_id = new_user()
    user = user_from_claims(jwt.get_unverified_claims(tokens.user(user_id, tier=0)))
    resolver = TierResolver(redis, keys, core)
    await set_cached_tier(redis, keys, user_id, 1)
    tier, (snapshot,) = await resolver.with_cached(user, quota.cache_key(user_id))
    assert tier == 1 and snapshot is None  # nothing cached for the quota yet
    fresh = await quota.remaining(user_id)  # reads the database, fills the cache
    tier, (snapshot,) = await resolver.with_cached(user, quota.cache_key(user_id))
    assert tier == 1 and snapshot is not None
    assert await quota.remaining(user_id, snapshot) == fresh


# ------------------------------------------------------------------- reserves coalesced into one call


@pytest.fixture
def quota_one_call(core, redis, keys):
    """One reserve call in flight at a time: a call held on a row lock makes the next ones queue."""
    return QuotaClient(core, redis, keys, reserves_in_flight=1)


async def _fresh_user(core, tier: int = 0) -> str:
    user = new_user()
    await core.execute("SELECT quota_reset($1::uuid, $2)", uuid.UUID(user), tier)
    return user


async def test_reserve_many_applies_each_item_on_its_own_in_user_order(core):
    a, b = await _fresh_user(core), await _fresh_user(core)  # free: 5 regular, 1 story
    ua, ub = uuid.UUID(a), uuid.UUID(b)
    rows = await core.fetch(
        "SELECT * FROM quota_reserve_many($1::uuid[], $2::text[], $3::int[])",
        [ua, ub, ua, ua, ub, ua],
        ["regular", "regular", "story", "regular", "gold", "regular"],
        [2, 1, 1, 4, 1, 3],
    )
    by_item = {r["item"]: r for r in rows}
    assert sorted(by_item) == [1, 2, 3, 4, 5, 6]
    # The same user several times in one call: each item sees what the ones before it left.
    assert by_item[1]["reservation_id"] and by_item[1]["remaining"] == 3
    assert by_item[3]["reservation_id"] and by_item[3]["remaining"] == 0
    assert by_item[4]["reservation_id"] is None and by_item[4]["remaining"] == 3 and by_item[4]["error_code"] is None
    assert by_item[6]["reservation_id"] and by_item[6]["remaining"] == 0
    assert by_item[2]["reservation_id"] and by_item[2]["remaining"] == 4
    # A failing item (unknown type) rolls back only itself.
    assert by_item[5]["reservation_id"] is None and by_item[5]["error_code"] == "22023"
    assert "unknown quota type" in by_item[5]["error_message"]
    assert await core.fetchval("SELECT quota FROM user_quotas WHERE user_id = $1", ua) == 0
    assert await core.fetchval("SELECT quota FROM user_quotas WHERE user_id = $1", ub) == 4
    held = await core.fetch(
        "SELECT user_id, quota_type, amount FROM quota_reservations WHERE user_id = ANY($1::uuid[]) AND state = 'held'",
        [ua, ub],
    )
    assert sorted((str(r["user_id"]) == a, r["quota_type"], r["amount"]) for r in held) == sorted(
        [(True, "regular", 2), (True, "story", 1), (True, "regular", 3), (False, "regular", 1)]
    )


async def test_concurrent_reserves_share_calls_and_each_caller_gets_its_own_answer(quota, core, redis, keys):
    users = [await _fresh_user(core, 1) for _ in range(6)]  # pro: 100 premium each
    for u in users:
        await quota.remaining(u)  # cached
    calls = [(users[i % 6], 1 + i % 4) for i in range(60)]
    results = await asyncio.gather(*(quota.reserve(u, "premium", n) for u, n in calls))
    assert quota._reserves.largest > 1 and quota._reserves.calls < 60
    assert [(r.user_id, r.amount) for r in results] == calls
    assert len({r.reservation_id for r in results}) == 60
    for u in users:
        mine = [r for r in results if r.user_id == u]
        spent = sum(r.amount for r in mine)
        assert (
            await core.fetchval("SELECT quota_premium_model FROM user_quotas WHERE user_id = $1", uuid.UUID(u))
            == 100 - spent
        )
        # Each answer is what that reserve left: the smallest is what remains now.
        assert min(r.remaining for r in mine) == 100 - spent
        assert sorted(r.remaining for r in mine) == sorted({r.remaining for r in mine})
        assert await redis.get(keys("quota", u)) is None  # every changed user's cache dropped
        rows = await core.fetch("SELECT id::text, amount FROM quota_reservations WHERE user_id = $1", uuid.UUID(u))
        assert {(x["id"], x["amount"]) for x in rows} == {(r.reservation_id, r.amount) for r in mine}


async def test_a_failing_item_fails_only_its_own_caller(quota_one_call, core):
    import asyncpg

    good = [await _fresh_user(core) for _ in range(4)]
    blocker = await core.acquire()
    try:  # hold one user's row so the following reserves queue up into one call
        tx = blocker.transaction()
        await tx.start()
        await blocker.execute("SELECT 1 FROM user_quotas WHERE user_id = $1 FOR UPDATE", uuid.UUID(good[0]))
        first = asyncio.ensure_future(quota_one_call.reserve(good[0], "regular"))
        await lock_waiters(core, "quota_reserve($1", 1)  # in flight: the next ones queue up
        batcher = quota_one_call._reserves
        # The public API refuses unknown types before the database; the batch path must still
        # keep one item's database error to its own caller.
        bad = batcher.submit(uuid.UUID(good[1]), "gold", 1)
        others = [asyncio.ensure_future(quota_one_call.reserve(u, "regular", 2)) for u in good[1:]]
        await asyncio.sleep(0.05)
        await tx.rollback()
    finally:
        await core.release(blocker)
    assert (await first).remaining == 4
    with pytest.raises(asyncpg.exceptions.InvalidParameterValueError, match="unknown quota type"):
        await bad
    assert [(await o).remaining for o in others] == [3, 3, 3]
    assert batcher.largest >= 4


async def test_connection_killed_mid_call_gives_errors_or_correct_answers_never_an_overspend(quota_one_call, core):
    users = [await _fresh_user(core) for _ in range(5)]  # 5 regular each
    hot = users[0]
    blocker = await core.acquire()
    tx = blocker.transaction()
    await tx.start()
    await blocker.execute("SELECT 1 FROM user_quotas WHERE user_id = $1 FOR UPDATE", uuid.UUID(hot))
    try:
        lone = asyncio.ensure_future(quota_one_call.reserve(hot, "regular", 1))  # goes alone, waits on the lock
        lone_pid = (await lock_waiters(core, "quota_reserve($1", 1))[0]
        batch1 = [asyncio.ensure_future(quota_one_call.reserve(u, "regular", 2)) for u in users + users[:2]]
        await asyncio.sleep(0)  # batch1's callers queue behind the lone call
        # Kill the lone reserve's connection: its caller gets an error, the queue goes on.
        await core.execute("SELECT pg_terminate_backend($1)", lone_pid)
        # Kill the call carrying the next seven mid-way (it also waits on the hot user's row).
        await core.execute("SELECT pg_terminate_backend($1)", (await lock_waiters(core, "quota_reserve_many", 1))[0])
        batch2 = [asyncio.ensure_future(quota_one_call.reserve(u, "regular", 3)) for u in users]
        await asyncio.sleep(0.05)
    finally:
        await tx.rollback()
        await core.release(blocker)
    results = await asyncio.gather(lone, *batch1, *batch2, return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors and all(dbmod.is_unavailable(e) for e in errors), errors
    assert all(isinstance(r, BaseException) for r in results[:8])  # the killed calls answered nobody
    assert [r.remaining for r in results[8:]] == [2] * 5  # the next call was made and answered correctly
    for u in users:
        held = await core.fetchval(
            "SELECT coalesce(sum(amount), 0) FROM quota_reservations WHERE user_id = $1 AND state = 'held'",
            uuid.UUID(u),
        )
        left = await core.fetchval("SELECT quota FROM user_quotas WHERE user_id = $1", uuid.UUID(u))
        assert held == 3 and left == 2  # the killed calls were rolled back whole
    assert (await quota_one_call.reserve(hot, "regular", 2)).remaining == 0


async def test_a_caller_cancelled_while_its_call_is_in_flight_gets_its_reservation_released(quota, core):
    user = await _fresh_user(core)
    other = await _fresh_user(core)
    blocker = await core.acquire()
    tx = blocker.transaction()
    await tx.start()
    await blocker.execute("SELECT 1 FROM user_quotas WHERE user_id = $1 FOR UPDATE", uuid.UUID(user))
    try:
        lone = asyncio.ensure_future(quota.reserve(user, "regular", 1))  # waits on the lock
        await lock_waiters(core, "quota_reserve($1", 1)
        # A second call in flight carries these two together, and waits on the lock too.
        queued = [asyncio.ensure_future(quota.reserve(u, "regular", 2)) for u in (user, other)]
        await lock_waiters(core, "quota_reserve_many", 1)
        queued[0].cancel()  # its request went away while the call is in flight
    finally:
        await tx.rollback()
        await core.release(blocker)
    assert (await lone).remaining == 4
    assert (await queued[1]).remaining == 3
    for _ in range(100):
        states = await core.fetch("SELECT amount, state FROM quota_reservations WHERE user_id = $1", uuid.UUID(user))
        if sorted((s["amount"], s["state"]) for s in states) == [(1, "held"), (2, "released")]:
            break
        await asyncio.sleep(0.02)
    assert sorted((s["amount"], s["state"]) for s in states) == [(1, "held"), (2, "released")]
    assert await core.fetchval("SELECT quota FROM user_quotas WHERE user_id = $1", uuid.UUID(user)) == 4


async def _grant(core, user: str, quota_type: str, amount: int) -> bool:
    return await core.fetchval(
        "SELECT quota_grant_reward($1::uuid, $2::uuid, $3, $4, 'test')",
        uuid.uuid4(),
        uuid.UUID(user),
        quota_type,
        amount,
    )


async def test_a_free_user_with_no_allowance_left_spends_the_reward_bonus(quota, core):
    user = new_user()
    for _ in range(TIER_QUOTAS[0]["regular"]):
        await quota.reserve(user, "regular")
    with pytest.raises(InsufficientQuota):
        await quota.reserve(user, "regular")
    assert await _grant(core, user, "regular", 2)
    r = await quota.reserve(user, "regular")
    assert r.reservation_id and r.remaining == 1
    row = await core.fetchrow("SELECT quota, bonus_quota FROM user_quotas WHERE user_id = $1", uuid.UUID(user))
    assert (row["quota"], row["bonus_quota"]) == (0, 1)
    # A release gives the bonus back to the bonus balance.
    await quota.release(r.reservation_id)
    assert await core.fetchval("SELECT bonus_quota FROM user_quotas WHERE user_id = $1", uuid.UUID(user)) == 2
    # Image credits: a free user's allowance is 0; the bonus is what they can spend.
    assert await _grant(core, user, "image_gen", 1)
    img = await quota.reserve(user, "image_gen")
    assert img.remaining == 0
    await quota.settle(img.reservation_id)
    assert (await quota.remaining(user))["image_gen"]["remaining"] == 0


async def test_concurrent_reserves_never_overspend_a_bonus(quota, core):
    user = new_user()
    assert await _grant(core, user, "premium", 3) and await _grant(core, user, "premium", 4)  # two rewards: 7
    results = await asyncio.gather(*(quota.reserve(user, "premium") for _ in range(30)), return_exceptions=True)
    granted = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, InsufficientQuota)]
    assert len(granted) == 7 and len(refused) == 23
    row = await core.fetchrow(
        "SELECT quota_premium_model, bonus_premium FROM user_quotas WHERE user_id = $1", uuid.UUID(user)
    )
    assert (row["quota_premium_model"], row["bonus_premium"]) == (0, 0)


async def test_a_reward_is_granted_once_per_reward_id(core):
    user, reward = new_user(), uuid.uuid4()
    grants = await asyncio.gather(
        *(
            core.fetchval("SELECT quota_grant_reward($1, $2::uuid, 'image_gen', 2, 'test')", reward, uuid.UUID(user))
            for _ in range(10)
        )
    )
    assert sorted(grants) == [False] * 9 + [True]
    assert await core.fetchval("SELECT bonus_image_gen FROM user_quotas WHERE user_id = $1", uuid.UUID(user)) == 2
    for bad_type, amount in (("video", 1), ("regular", 0), ("nonsense", 1)):
        with pytest.raises(asyncpg.InvalidParameterValueError):
            await core.fetchval(
                "SELECT quota_grant_reward($1, $2::uuid, $3, $4, 'x')", uuid.uuid4(), uuid.UUID(user), bad_type, amount
            )
