"""Transactional outbox: a state change and its event commit together, or neither does.

`emit(conn, event)` inserts into `outbox_events` inside the caller's transaction. The relay
publishes unpublished rows with confirms and marks them, so an event emitted while RabbitMQ is
down is delivered when it returns. A crash between publish and mark re-publishes: consumers
are idempotent by event id, so that is harmless.

Published rows keep the events' bodies (a user.created carries the email), so they do not stay:
the relay deletes published rows older than OUTBOX_RETENTION_HOURS (`sweep_published`), and a
service erasing a user deletes its published rows naming that user at once (`erase_published`).
Unpublished rows are never deleted: they are owed to the bus (Auth's own user.deleted among them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg

from shared.bus.publisher import EventPublisher
from shared.events import Event
from shared.periodic import Periodic
from shared.tasks import cancel_and_wait

log = logging.getLogger("shared.bus.outbox")

_INSERT = "INSERT INTO outbox_events (event_id, event_type, body) VALUES ($1, $2, $3)"

# The same insert as one part of a larger statement (a data-modifying CTE), for a hot path that
# saves its change and its events in a single round trip instead of BEGIN/.../emit/COMMIT:
# `OUTBOX_INSERT_ARRAYS.format(ids="$7", types="$8", bodies="$9")` with `outbox_arrays(events)`
# bound to those three parameters. A single statement is atomic, so the guarantee is emit's.
OUTBOX_INSERT_ARRAYS = (
    "INSERT INTO outbox_events (event_id, event_type, body)"
    " SELECT * FROM unnest({ids}::uuid[], {types}::text[], {bodies}::bytea[])"
)


def outbox_arrays(events) -> tuple[list[str], list[str], list[bytes]]:
    return [e.event_id for e in events], [e.event_type for e in events], [e.to_bytes() for e in events]


async def emit(conn: asyncpg.Connection, *events: Event) -> None:
    """Record events in the caller's transaction (call inside `async with conn.transaction()`)."""
    if len(events) == 1:
        e = events[0]
        await conn.execute(_INSERT, e.event_id, e.event_type, e.to_bytes())
    elif events:
        await conn.executemany(_INSERT, [(e.event_id, e.event_type, e.to_bytes()) for e in events])


# Published rows older than the cutoff, oldest first, a batch at a time. Ids follow creation
# order, so the walk stops at `bound`, the first row created after the cutoff, instead of reading
# the whole table: no index on published_at needed (one would cost every publish an index write).
_SWEEP = """
    DELETE FROM outbox_events WHERE id IN (
        SELECT id FROM outbox_events
         WHERE id < $3 AND published_at IS NOT NULL AND published_at < $1
         ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED)
"""
_SWEEP_BOUND = """
    SELECT coalesce((SELECT id FROM outbox_events WHERE created_at >= $1 ORDER BY id LIMIT 1),
                    (SELECT max(id) + 1 FROM outbox_events), 0)
"""


async def sweep_published(pool: asyncpg.Pool, older_than_seconds: float, batch_size: int = 5000) -> int:
    """Delete published rows published more than `older_than_seconds` ago, in batches (each its
    own short statement, so no long lock and no long transaction); returns how many."""
    cutoff = await pool.fetchval("SELECT now() - make_interval(secs => $1)", float(older_than_seconds))
    bound = await pool.fetchval(_SWEEP_BOUND, cutoff)
    total = 0
    while True:
        status = await pool.execute(_SWEEP, cutoff, batch_size, bound)
        deleted = int(status.rsplit(" ", 1)[1])
        total += deleted
        if deleted < batch_size:
            return total


async def erase_published(conn: asyncpg.Connection, user_id: str) -> int:
    """A user's erasure, in the caller's transaction: delete the published rows whose body names
    the user (anywhere: user_id, author_id, an email beside the id). Unpublished ones stay to be
    delivered; the sweep removes them once published and past the retention. A scan of the
    table, which the sweep keeps to the retention window (docs/benchmarks.md: outbox retention)."""
    status = await conn.execute(
        "DELETE FROM outbox_events WHERE published_at IS NOT NULL AND position($1::bytea IN body) > 0",
        str(user_id).encode(),
    )
    return int(status.rsplit(" ", 1)[1])


_CLAIM = """
    UPDATE outbox_events SET claimed_until = now() + make_interval(secs => $2)
     WHERE id IN (SELECT id FROM outbox_events
                   WHERE published_at IS NULL AND (claimed_until IS NULL OR claimed_until < now())
                   ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)
    RETURNING id, event_id::text AS event_id, event_type, body
"""


def _alive(listener) -> bool:
    """False once the LISTEN connection is gone. When its connection is lost (the server
    terminated it), asyncpg detaches the pool proxy and `is_closed()` itself raises
    InterfaceError; unguarded, that ended the relay task silently and no event was published
    again until a restart."""
    try:
        return not listener.is_closed()
    except asyncpg.InterfaceError:
        return False


class OutboxRelay:
    def __init__(
        self,
        pool: asyncpg.Pool,
        publisher: EventPublisher,
        *,
        batch_size: int = 500,
        poll_seconds: float = 1.0,
        max_backoff_seconds: float = 30.0,
        coalesce_seconds: float = 0.005,
        claim_seconds: float = 30.0,
        retention_seconds: float | None = 24 * 3600.0,
        sweep_every_seconds: float = 600.0,
    ):
        self.pool = pool
        self.publisher = publisher
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self.max_backoff = max_backoff_seconds
        # After a wake-up, wait this long before draining: the request that just committed
        # finishes its response first (the relay shares its event loop), and events committed
        # meanwhile by other requests go out in the same batch and transaction.
        self.coalesce_seconds = coalesce_seconds
        # How long a claimed batch stays invisible to other relays: far longer than a publish
        # with confirms takes; after it, a batch whose relay died is published again.
        self.claim_seconds = claim_seconds
        # Published rows older than this are deleted (None: kept; only for tests of the relay).
        self.retention_seconds = retention_seconds
        self.sweep_every_seconds = sweep_every_seconds
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._sweeper = (
            Periodic(
                self._sweep,
                sweep_every_seconds,
                name="outbox-sweeper",
                log=log,
                failure="outbox sweep failed; next one as scheduled",
            )
            if retention_seconds is not None
            else None
        )
        self._stopping = False
        self.published_total = 0
        self.swept_total = 0

    @classmethod
    def from_settings(cls, pool: asyncpg.Pool, publisher: EventPublisher, settings) -> OutboxRelay:
        """A service's relay (in its web process or `python -m shared.relay`), from ServiceSettings."""
        return cls(
            pool,
            publisher,
            batch_size=settings.outbox_batch_size,
            retention_seconds=settings.outbox_retention_hours * 3600.0,
            sweep_every_seconds=settings.outbox_sweep_seconds,
        )

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbox-relay")
        if self._sweeper is not None:
            self._sweeper.start()

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        # The relay first, with no await before its cancel: given the time to leave its loop on its
        # own, it would be cancelled while handing its listener back, and the pool never closes.
        await cancel_and_wait(self._task)
        if self._sweeper is not None:
            await self._sweeper.stop()

    async def _sweep(self) -> None:
        """Every `sweep_every_seconds` (the first at start): published rows past the retention go.
        A task of its own, so a long sweep never delays publishing; every worker runs one (SKIP
        LOCKED: they share the work rather than wait on each other)."""
        swept = await sweep_published(self.pool, self.retention_seconds)
        self.swept_total += swept
        if swept:
            log.info("outbox sweep", extra={"deleted": swept, "retention_h": self.retention_seconds / 3600})

    def wake(self) -> None:
        self._wake.set()

    def _on_notify(self, *_args) -> None:
        self._wake.set()

    async def _listen(self) -> asyncpg.Connection | None:
        try:
            conn = await self.pool.acquire()
        except Exception:
            return None
        try:
            await conn.add_listener("outbox_events", self._on_notify)
        except Exception:
            await self.pool.release(conn)
            return None
        return conn

    async def _run(self) -> None:
        listener: asyncpg.Connection | None = None
        backoff = 0.0
        try:
            while not self._stopping:
                if listener is None or not _alive(listener):
                    if listener is not None:
                        try:
                            await self.pool.release(listener)
                        except Exception:
                            pass
                    listener = await self._listen()
                self._wake.clear()
                try:
                    await self.drain()
                    backoff = 0.0
                except Exception as exc:
                    backoff = min(self.max_backoff, max(0.5, backoff * 2))
                    log.warning(
                        "outbox relay: publish failed, retrying", extra={"error": repr(exc), "retry_in_s": backoff}
                    )
                    await asyncio.sleep(backoff)
                    continue
                try:
                    await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
                    if self.coalesce_seconds and not self._stopping:
                        await asyncio.sleep(self.coalesce_seconds)
                except TimeoutError:
                    pass
        except asyncio.CancelledError:
            pass  # stop(): wherever the relay was waiting, it still hands its listener back
        finally:
            # Unreleased, the LISTEN connection would make the pool's close() wait forever.
            if listener is not None:
                try:
                    if _alive(listener):
                        await listener.remove_listener("outbox_events", self._on_notify)
                    await self.pool.release(listener)
                except Exception:
                    pass

    async def drain(self) -> int:
        """Publish every unpublished event; returns how many were confirmed.

        A batch is claimed by one statement (`claimed_until`, so concurrent relays of other
        workers skip it), published with confirms, then marked: two round trips and no
        transaction held open across the publish."""
        total = 0
        while True:
            rows = await self.pool.fetch(_CLAIM, self.batch_size, self.claim_seconds)
            if not rows:
                return total
            rows = sorted(rows, key=lambda r: r["id"])  # RETURNING order is not guaranteed
            try:
                results = await self.publisher.publish_raw(
                    [(r["event_id"], r["event_type"], bytes(r["body"])) for r in rows]
                )
            except BaseException:
                # Hand the batch back at once (the broker is away, or we are stopping), rather
                # than leave it invisible until the claim expires.
                with contextlib.suppress(Exception):
                    await self.pool.execute(
                        "UPDATE outbox_events SET claimed_until = NULL WHERE id = ANY($1::bigint[])",
                        [r["id"] for r in rows],
                    )
                raise
            done = [r["id"] for r, err in zip(rows, results, strict=True) if err is None]
            failed = [(r["id"], repr(err)) for r, err in zip(rows, results, strict=True) if err is not None]
            if done:
                await self.pool.execute(
                    "UPDATE outbox_events SET published_at = now(), claimed_until = NULL WHERE id = ANY($1::bigint[])",
                    done,
                )
            if failed:
                await self.pool.executemany(
                    "UPDATE outbox_events SET attempts = attempts + 1, last_error = $2, "
                    "claimed_until = NULL WHERE id = $1",
                    failed,
                )
            total += len(done)
            self.published_total += len(done)
            if failed:
                raise RuntimeError(f"{len(failed)} events not confirmed: {failed[0][1]}")
            if len(rows) < self.batch_size:
                return total
