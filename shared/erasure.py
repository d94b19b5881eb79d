"""The second erasure pass: closes the write-after-erasure race of `user.deleted`.

A request authenticated just before its process knew of a deletion (shared.tombstones) may still
be running when the service's consumer erases the user, and write a row of theirs after the
erasure (Payment's `GET /quota` creating the quota row it did not find, a chat turn saving its
answer). From the tombstone on, no new request of the user is accepted, so what can still come
is bounded by how long a request runs. The service's `user.deleted` handler therefore records a
second pass (`schedule`, in the erasure's own transaction, so a crash cannot lose it) due
`ERASURE_SECOND_PASS_SECONDS` later; `SecondPasses`, started by the app factory for every service
that erases users, runs the service's same erasure again when it is due, and forgets the row in
that transaction. Pending passes live in the service's database (`erasure_second_passes`,
shared/migrations), so a restart only delays them; several processes share the work
(`FOR UPDATE SKIP LOCKED`). A pass that fails stays due and is retried at the next sweep.

Why not make the lazy creations require the user instead: the services keep no users table of
their own (only Payment's core tables could join Auth's), and every write path would need it;
one second pass covers every table, present and future, with the erasure the service already has.
What it does not cover: a request still running after the delay (set it above the longest
request a service serves, streams included).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from shared.periodic import Periodic

log = logging.getLogger("shared.erasure")

# `async def erase(conn, user_id, state)`: the service's erasure of one user, in the caller's transaction.
Erase = Callable[[asyncpg.Connection, str, Any], Awaitable[object]]


async def schedule(
    conn: asyncpg.Connection, user_id: str, state: Any = None, *, delay_seconds: float | None = None
) -> None:
    """In the first erasure's transaction: erase the user again once in-flight requests are done
    (after `delay_seconds`, by default the service's ERASURE_SECOND_PASS_SECONDS)."""
    delay = delay_seconds if delay_seconds is not None else float(state.settings.erasure_second_pass_seconds)
    await conn.execute(
        "INSERT INTO erasure_second_passes (user_id, due_at) VALUES ($1, now() + make_interval(secs => $2))"
        " ON CONFLICT (user_id) DO UPDATE SET due_at = GREATEST(erasure_second_passes.due_at, EXCLUDED.due_at)",
        str(user_id),
        delay,
    )


class SecondPasses:
    def __init__(self, pool: asyncpg.Pool, erase: Erase, state: Any, *, interval_seconds: float, batch: int = 100):
        self.pool = pool
        self.erase = erase
        self.state = state
        self.interval = interval_seconds
        self.batch = batch
        self._periodic = Periodic(
            self.run_due,
            interval_seconds,
            name="erasure-second-passes",
            log=log,
            # the database away: the passes stay due, the next turn retries
            failure="second erasure passes not run",
        )

    def start(self) -> None:
        self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()

    async def run_due(self) -> int:
        """Runs the passes that are due, each in its own transaction; returns how many ran."""
        done = 0
        while done < self.batch:
            async with self.pool.acquire() as conn:
                user_id = None
                try:
                    async with conn.transaction():
                        user_id = await conn.fetchval(
                            "SELECT user_id FROM erasure_second_passes WHERE due_at <= now()"
                            " ORDER BY due_at LIMIT 1 FOR UPDATE SKIP LOCKED"
                        )
                        if user_id is None:
                            return done
                        await self.erase(conn, user_id, self.state)
                        await conn.execute("DELETE FROM erasure_second_passes WHERE user_id = $1", user_id)
                except Exception as exc:
                    if user_id is None:
                        raise
                    # Pushed back, so one failing user does not hold the others up.
                    log.warning("second erasure pass failed", extra={"user_id": user_id, "error": repr(exc)})
                    await conn.execute(
                        "UPDATE erasure_second_passes SET attempts = attempts + 1,"
                        " due_at = now() + make_interval(secs => $2) WHERE user_id = $1",
                        user_id,
                        max(self.interval, 1.0) * 6,
                    )
                    return done
            log.info("second erasure pass done", extra={"user_id": user_id})
            done += 1
        return done


__all__ = ["Erase", "SecondPasses", "schedule"]
