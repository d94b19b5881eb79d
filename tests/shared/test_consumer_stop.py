"""Consumer.stop() while the consumer is still connecting must not leave _run() waiting forever.

On Python 3.11 `asyncio.wait_for` can swallow a cancellation that arrives as the awaited open
completes, so `_run()` carries on past `ch.open()` with `_stopping` already set. The test puts
the consumer in exactly that state (stop requested during declaration, the cancel lost) and
checks that `_run()` ends by itself and closes its connection.
"""

import asyncio

from shared.bus import Consumer, EventHandlers


class StoppedWhileDeclaring(Consumer):
    async def _declare(self, ch):
        await super()._declare(ch)
        self._stopping = True  # stop() was called meanwhile; its cancel was swallowed
        self.declared_on = ch


async def test_run_ends_when_stopped_during_connect(service_env, databases):
    import asyncpg

    pool = await asyncpg.create_pool(databases["core"], min_size=1, max_size=1)
    handlers = EventHandlers()

    @handlers.on("user.created")
    async def _noop(conn, event, state):
        pass

    consumer = StoppedWhileDeclaring(
        url=service_env["RABBITMQ_URL"],
        exchange="scenextras.events",
        queue="test_consumer_stop.events",
        pool=pool,
        handlers=handlers,
    )
    try:
        consumer.start()
        await asyncio.wait_for(consumer._task, 10)  # without the fix: hangs on ch.wait_closed()
        assert not consumer.declared_on.is_open
        assert not consumer.ready.is_set()
    finally:
        consumer._stopping = True
        if not consumer._task.done():
            consumer._task.cancel()
        await pool.close()
