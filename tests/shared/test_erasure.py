"""shared.erasure: the write-after-erasure race of user.deleted, reproduced deterministically on
Payment (real PostgreSQL, RabbitMQ, the service's real consumer and route): a request that was
authenticated before its process knew of the deletion writes the user's quota row after the first
erasure; the second pass removes it, also when the process restarted in between."""

from __future__ import annotations

import time
import uuid

import asyncpg
import pytest

from shared.bus import EventPublisher
from shared.erasure import SecondPasses
from shared.events import EventType, make_event
from shared.migrate import migrate

pytestmark = pytest.mark.asyncio(loop_scope="session")

# Long enough that the pass never runs by itself during the test: the test brings it forward.
SLOW = {"erasure_second_pass_seconds": "600", "erasure_sweep_seconds": "0.1"}


async def publish_deleted(service_env, user_id: str) -> None:
    publisher = EventPublisher(service_env["RABBITMQ_URL"], "scenextras.events")
    try:
        data = {"was_guest": False, "tokens_valid_until": time.time() + 3600}
        await publisher.publish(make_event(EventType.USER_DELETED, user_id, data, source="tests"))
    finally:
        await publisher.close()


async def quota_rows(db, user_id: str) -> int:
    return await db.fetchval("SELECT count(*) FROM user_quotas WHERE user_id = $1", uuid.UUID(user_id))


async def pending(db, user_id: str) -> int:
    return await db.fetchval("SELECT count(*) FROM erasure_second_passes WHERE user_id = $1", user_id)


async def write_after_first_erasure(client, service_env, tokens, db, user_id: str, eventually) -> None:
    """The race, made to happen: the user's row exists, user.deleted erases it (and schedules the
    second pass), then a request authenticated before the tombstone arrived writes it again."""
    headers = tokens.headers(tokens.user(user_id))
    assert (await client.get("/quota", headers=headers)).status_code == 200
    assert await quota_rows(db, user_id) == 1
    await publish_deleted(service_env, user_id)
    # The service's queue may hold earlier tests' events (it is the session's): a wide failure bound.
    await eventually(lambda: _first_pass_done(db, user_id), timeout=90)
    # Authenticated before the tombstone: the request passes the check, then writes.
    tombstones = client.app.state.tombstones
    until = tombstones._until.pop(user_id)
    try:
        assert (await client.get("/quota", headers=headers)).status_code == 200
    finally:
        tombstones.add(user_id, until)
    assert await quota_rows(db, user_id) == 1, "the race is reproduced: a row of the user after the erasure"
    assert (await client.get("/quota", headers=headers)).json()["detail"]["code"] == "USER_DELETED"


async def _first_pass_done(db, user_id: str) -> bool:
    return await quota_rows(db, user_id) == 0 and await pending(db, user_id) == 1


@pytest.fixture
async def core_db(service_env):
    await migrate(service_env["DATABASE_URL"], "payment")
    pool = await asyncpg.create_pool(service_env["DATABASE_URL"], min_size=1, max_size=2)
    yield pool
    await pool.close()


async def test_second_pass_erases_what_a_request_in_flight_wrote(make_client, service_env, tokens, core_db, eventually):
    user_id = str(uuid.uuid4())
    async with make_client("payment", **SLOW) as client:
        await write_after_first_erasure(client, service_env, tokens, core_db, user_id, eventually)
        await core_db.execute("UPDATE erasure_second_passes SET due_at = now() WHERE user_id = $1", user_id)
        await eventually(lambda: _all_gone(core_db, user_id), timeout=30)


async def test_a_pending_second_pass_survives_a_restart(make_client, service_env, tokens, core_db, eventually):
    user_id = str(uuid.uuid4())
    async with make_client("payment", **SLOW) as client:
        await write_after_first_erasure(client, service_env, tokens, core_db, user_id, eventually)
    # The process is gone with the pass still pending; the next one runs it when it is due.
    assert await pending(core_db, user_id) == 1 and await quota_rows(core_db, user_id) == 1
    await core_db.execute("UPDATE erasure_second_passes SET due_at = now() WHERE user_id = $1", user_id)
    async with make_client("payment", **SLOW):
        await eventually(lambda: _all_gone(core_db, user_id), timeout=30)


async def test_a_failing_pass_stays_due_and_others_still_run(core_db):
    failing, fine = f"fail-{uuid.uuid4()}", f"fine-{uuid.uuid4()}"
    await core_db.execute(
        "INSERT INTO erasure_second_passes (user_id, due_at) VALUES ($1, now() - interval '2 s'), ($2, now())",
        failing,
        fine,
    )
    erased = []

    async def erase(conn, user_id, state):
        if user_id == failing:
            raise RuntimeError("storage away")
        erased.append(user_id)

    passes = SecondPasses(core_db, erase, None, interval_seconds=1)
    assert await passes.run_due() == 0  # the failing one came first and was pushed back
    row = await core_db.fetchrow(
        "SELECT attempts, due_at > now() AS later FROM erasure_second_passes WHERE user_id = $1", failing
    )
    assert row["attempts"] == 1 and row["later"]
    assert await passes.run_due() == 1 and erased == [fine]
    assert await pending(core_db, fine) == 0 and await pending(core_db, failing) == 1
    await core_db.execute("DELETE FROM erasure_second_passes WHERE user_id = $1", failing)


async def _all_gone(db, user_id: str) -> bool:
    return await quota_rows(db, user_id) == 0 and await pending(db, user_id) == 0
