"""Pooled connections: released without the reset round trip, yet nothing leaks to the next user."""
import asyncio

import asyncpg
import pytest

from shared import db as dbmod

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture(scope="module")
async def pool(databases):
    p = await dbmod.create_pool(databases["core"], min_size=1, max_size=1)
    yield p
    await p.close()


async def test_release_skips_the_reset_query(pool):
    async with pool.acquire() as conn:
        assert isinstance(conn, dbmod.PooledConnection)
        assert conn.get_reset_query() == ""
        backend = await conn.fetchval("SELECT pg_backend_pid()")
    async with pool.acquire() as conn:  # one connection: the same backend, no reconnect
        assert await conn.fetchval("SELECT pg_backend_pid()") == backend


async def test_open_transaction_is_rolled_back_on_release(pool):
    async with pool.acquire() as conn:
        await conn.execute("CREATE TABLE IF NOT EXISTS db_release_probe (n int)")
        await conn.execute("TRUNCATE db_release_probe")
    conn = await pool.acquire()
    tx = conn.transaction()
    await tx.start()
    await conn.execute("INSERT INTO db_release_probe VALUES (1)")
    await conn.execute("SELECT set_config('application_name', 'leaky', true)")
    await pool.release(conn)  # released mid-transaction, e.g. a cancelled request
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM db_release_probe") == 0
        assert await conn.fetchval("SELECT current_setting('application_name')") != "leaky"
        await conn.execute("DROP TABLE db_release_probe")


async def test_listener_callbacks_do_not_survive_release(pool):
    woke = asyncio.Event()
    with pytest.warns(asyncpg.InterfaceWarning, match="notification listener"):
        async with pool.acquire() as conn:
            await conn.add_listener("db_release_channel", lambda *_: woke.set())
    async with pool.acquire() as conn:
        await conn.execute("NOTIFY db_release_channel")
        await asyncio.sleep(0.2)
    assert not woke.is_set()
