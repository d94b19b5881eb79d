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
        # A listener of this acquisition hears the NOTIFY: the old callback, had it survived on
        # the connection, would have been called by the same dispatch.
        heard = asyncio.Event()

        def on_notify(*_):
            heard.set()

        await conn.add_listener("db_release_channel", on_notify)
        await conn.execute("NOTIFY db_release_channel")
        await asyncio.wait_for(heard.wait(), 10)
        await conn.remove_listener("db_release_channel", on_notify)
    assert not woke.is_set()


async def test_an_oserror_that_is_not_the_database_is_a_500(make_client):
    """Only the database's own connection failures read as DATABASE_UNAVAILABLE."""
    from tests.shared.apps import build_probe_app

    async with make_client(build_probe_app) as client:
        r = await client.get("/missing-file")
        assert r.status_code == 500
        assert r.json()["detail"]["code"] == "INTERNAL_ERROR"
        assert "Retry-After" not in r.headers


async def test_an_unreachable_database_raises_database_unavailable():
    with pytest.raises(dbmod.DatabaseUnavailable) as refused:
        await dbmod.create_pool("postgresql://nobody:nothing@127.0.0.1:1/none", min_size=1, max_size=1)
    assert isinstance(refused.value.__cause__, OSError)
    assert dbmod.is_unavailable(refused.value)


async def test_a_database_outage_is_still_a_503_with_retry_after(make_client, service_env):
    from urllib.parse import urlsplit, urlunsplit

    from shared.testing.proxy import TcpProxy
    from tests.shared.apps import build_probe_app

    parts = urlsplit(service_env["DATABASE_URL"])
    proxy = await TcpProxy(parts.hostname, parts.port or 5432).start()
    via_proxy = urlunsplit(parts._replace(netloc=f"{parts.netloc.rsplit('@', 1)[0]}@127.0.0.1:{proxy.port}"))
    try:
        async with make_client(build_probe_app, database_url=via_proxy) as client:
            assert (await client.get("/db-now")).status_code == 200
            proxy.cut()  # live connections dropped, new ones refused
            for _ in range(2):  # the pool's dropped connection, then a fresh connect that fails
                r = await client.get("/db-now")
                assert r.status_code == 503, r.text
                assert r.json()["detail"]["code"] == "DATABASE_UNAVAILABLE"
                assert r.headers["Retry-After"] == "2"
            await proxy.close()  # nothing listens any more: connection refused
            r = await client.get("/db-now")
            assert r.status_code == 503 and r.json()["detail"]["code"] == "DATABASE_UNAVAILABLE"
            proxy.restore()
    finally:
        await proxy.close()
