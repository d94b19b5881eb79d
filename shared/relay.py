"""`python -m shared.relay <service>`: one service's outbox relay as a process of its own.

By default each web process publishes its outbox from its own event loop
(OUTBOX_RELAY=inprocess). That costs the loop a claim, a publish and a mark for every batch,
between the awaits of the requests it serves: ~1.5 ms of CPU per chat message on the benchmark
VM, about a fifth of the service's. With OUTBOX_RELAY=external the web processes leave it to this
process (Procfile `relay`; `dokku ps:scale <app> relay=1`), which runs on a core of its own.

Nothing is lost either way: events are rows in the service's own database until published.
If no relay runs, they wait there (and are published when one starts); several relays may run,
each batch is claimed by one (`claimed_until`). Stops cleanly on SIGTERM (Dokku's stop signal).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from shared.bus import EventPublisher, OutboxRelay
from shared.db import create_pool
from shared.logs import configure_logging
from shared.migrate import SERVICE_DATABASES, database_url_for
from shared.settings import ServiceSettings, load_settings

log = logging.getLogger("shared.relay")


async def run(service: str, stop: asyncio.Event) -> None:
    settings = load_settings(ServiceSettings)
    configure_logging(f"{service}_service", settings.log_level, settings.log_json)
    dsn = database_url_for(service)
    pool = await create_pool(dsn, min_size=1, max_size=2)
    publisher = EventPublisher(settings.rabbitmq_url, settings.events_exchange, name=f"{service}_service:relay")
    relay = OutboxRelay.from_settings(pool, publisher, settings)
    relay.start()
    log.info("outbox relay started", extra={"service": service})
    try:
        await stop.wait()
    finally:
        await relay.stop()
        await publisher.close()
        await pool.close()
        log.info("outbox relay stopped", extra={"service": service, "published": relay.published_total})


def main(argv: list[str]) -> int:
    with_outbox = [s for s, var in SERVICE_DATABASES.items() if var is not None]
    if len(argv) != 1 or argv[0].removesuffix("_service") not in with_outbox:
        print(f"usage: python -m shared.relay <service>   (one of: {', '.join(with_outbox)})", file=sys.stderr)
        return 2
    service = argv[0].removesuffix("_service")

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run(service, stop)

    try:
        import uvloop
    except ImportError:  # uvicorn[standard] brings it to every service; plain asyncio works too
        asyncio.run(serve())
    else:
        uvloop.run(serve())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
