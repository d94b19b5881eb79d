"""Starting a module's fleet: the services as processes, their consumers attached, optionally the
sandbox's Stripe posting signed webhooks to this fleet's Payment; stopped (and the webhook endpoint
removed) however the module ends. Each e2e module's `fleet` fixture is one `with` around this."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

from shared import fleet as manifest
from shared.testing.env import Infra, queue_info
from shared.testing.fleet import Fleet


def consumer_queues(services: tuple[str, ...], extra: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The durable queues of the services that consume events (the manifest's), plus `extra`."""
    own = tuple(manifest.get(s).events_queue for s in services if manifest.get(s).consumes_events)
    return own + extra


def wait_for_consumers(infra: Infra, vhost: str, queues: tuple[str, ...], timeout: float = 30.0) -> None:
    """Each consumer has declared and bound its queue: an event published now reaches it."""
    deadline = time.monotonic() + timeout
    while True:
        missing = [q for q in queues if (queue_info(infra, vhost, q) or {}).get("consumers", 0) < 1]
        if not missing:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"consumers not attached in time: {missing}")
        time.sleep(0.2)


@contextlib.contextmanager
def running_fleet(
    env: dict[str, str],
    sandbox,
    infra: Infra,
    log_dir: Path,
    *,
    services: tuple[str, ...] = ("auth", "payment", "chat"),
    service_env: dict[str, dict[str, str]] | None = None,
    extra_queues: tuple[str, ...] = (),
    stripe_webhooks: bool = False,
    timeout: float = 180.0,
) -> Iterator[Fleet]:
    from sandbox.stripe_api import store_of

    f = Fleet(env, log_dir=log_dir, services=services, service_env=service_env or {}).start(timeout=timeout)
    endpoint = None
    try:
        wait_for_consumers(infra, env["REDIS_PREFIX"], consumer_queues(services, extra_queues))
        if stripe_webhooks:
            endpoint = sandbox.control.stripe_webhook_endpoint(f.url("payment") + "/webhook")
        f.sandbox = sandbox
        yield f
    finally:
        if endpoint is not None:
            store = store_of(sandbox.state)
            store.endpoints[:] = [e for e in store.endpoints if e["id"] != endpoint["id"]]
        f.stop()
