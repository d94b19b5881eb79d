"""What README promises when a dependency goes away, and for events nobody listens to:
- the database down: 503 DATABASE_UNAVAILABLE with Retry-After (never a 500), and back when it returns;
- Redis down where a route needs it: 503 CACHE_UNAVAILABLE with Retry-After;
- an event no queue is bound to is kept in `<exchange>.unrouted` (`scenextras.events.unrouted`), not dropped."""

import asyncio
import uuid
from urllib.parse import urlsplit, urlunsplit

import pytest
from fastapi import APIRouter, Request

from shared.app import create_app
from shared.bus import EventPublisher
from shared.bus.amqp import AMQPChannel
from shared.events import Event, make_event
from shared.settings import ServiceSettings
from shared.testing.proxy import TcpProxy

pytestmark = pytest.mark.asyncio(loop_scope="session")
EXCHANGE = "scenextras.events"


def build_dependency_app(env: dict):
    router = APIRouter()

    @router.get("/db")
    async def from_db(request: Request):
        return {"one": await request.app.state.db.fetchval("SELECT 1")}

    @router.get("/cache")
    async def from_cache(request: Request):
        return {"value": await request.app.state.redis.get("dependency-probe")}

    return create_app(service="probe", settings=ServiceSettings(service_name="probe"), routers=[router], outbox=False)


def through(url: str, proxy: TcpProxy) -> str:
    parts = urlsplit(url)
    credentials = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    return urlunsplit(parts._replace(netloc=f"{credentials}127.0.0.1:{proxy.port}"))


async def _proxy_to(url: str, default_port: int) -> TcpProxy:
    parts = urlsplit(url)
    return await TcpProxy(parts.hostname or "127.0.0.1", parts.port or default_port).start()


async def _answer_until(client, path: str, status: int, within: float = 20.0):
    """Ask until the answer has `status` (a pool reconnecting may take a few tries), with a deadline."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        r = await client.get(path)
        if r.status_code == status or asyncio.get_running_loop().time() > deadline:
            return r
        await asyncio.sleep(0.1)


def assert_unavailable(r, code: str) -> None:
    assert r.status_code == 503, r.text
    assert r.json()["detail"]["code"] == code and r.json()["detail"]["message"]
    assert 1 <= int(r.headers["retry-after"]) <= 60


async def test_database_down_is_503_with_retry_after(make_client, service_env):
    proxy = await _proxy_to(service_env["DATABASE_URL"], 5432)
    try:
        async with make_client(
            build_dependency_app, database_url=through(service_env["DATABASE_URL"], proxy), db_pool_min=1, db_pool_max=2
        ) as client:
            assert (await client.get("/db")).json() == {"one": 1}
            proxy.cut()
            for _ in range(3):  # a pooled connection whose server vanished, then new connections refused
                assert_unavailable(await client.get("/db"), "DATABASE_UNAVAILABLE")
            proxy.restore()
            back = await _answer_until(client, "/db", 200)
            assert back.status_code == 200 and back.json() == {"one": 1}
    finally:
        await proxy.close()


async def test_cache_down_is_503_with_retry_after(make_client, service_env):
    proxy = await _proxy_to(service_env["REDIS_URL"], 6379)
    try:
        async with make_client(build_dependency_app, redis_url=through(service_env["REDIS_URL"], proxy)) as client:
            assert (await client.get("/cache")).status_code == 200
            proxy.cut()
            for _ in range(2):
                assert_unavailable(await client.get("/cache"), "CACHE_UNAVAILABLE")
            proxy.restore()
            assert (await _answer_until(client, "/cache", 200)).status_code == 200
    finally:
        await proxy.close()


async def test_an_event_no_queue_is_bound_to_is_kept_in_unrouted(service_env):
    """On an events exchange of its own, declared the way every publisher and consumer declares
    `scenextras.events` (shared.bus.amqp.declare_event_exchange): in this run's vhost, a service's
    queue bound to `#` (Analytics' tap) would otherwise take every event, bound or not."""
    exchange = f"unrouted-test-{uuid.uuid4().hex[:8]}"
    publisher = EventPublisher(service_env["RABBITMQ_URL"], exchange, "test-unrouted")
    event = make_event("nobody.listens", str(uuid.uuid4()), {"kept": True})
    ch = await AMQPChannel(service_env["RABBITMQ_URL"], "unrouted-reader").open()
    try:
        await publisher.publish(event)  # confirmed by the broker: routed (to the alternate exchange)
        found: asyncio.Future = asyncio.get_running_loop().create_future()

        def on_message(_channel, _method, props, body):
            if props.message_id == event.event_id and not found.done():
                found.set_result(Event.from_bytes(body))

        ch.channel.basic_consume(f"{exchange}.unrouted", on_message, auto_ack=True)
        try:
            kept = await asyncio.wait_for(found, 10)
        except TimeoutError:
            raise AssertionError(f"{event.event_type} was not kept in {exchange}.unrouted") from None
        assert kept.event_type == event.event_type and kept.data == {"kept": True}
    finally:
        for name in (exchange, f"{exchange}.unrouted"):
            await ch._rpc(ch.channel.exchange_delete, exchange=name)
        await ch._rpc(ch.channel.queue_delete, queue=f"{exchange}.unrouted")
        await ch.close()
        await publisher.close()
