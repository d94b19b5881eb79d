"""Polling until a condition holds: the one helper behind the `eventually` fixture and the e2e
modules' waits; and the database barrier race tests use (`holding`, `lock_waiters`)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable


async def eventually(check, timeout: float = 10.0, interval: float = 0.05, what: str = "condition"):
    """Polls `check` (sync or async) until it answers something truthy and returns that answer;
    AssertionError naming `what` and the last answer after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        answer = check()
        if asyncio.iscoroutine(answer):
            answer = await answer
        if answer:
            return answer
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout}s (last: {answer!r})")
        await asyncio.sleep(interval)


async def lock_waiters(db, text: str, count: int, within: float = 30.0) -> list[int]:
    """Until `count` backends of `db`'s database wait on a lock while running a query that
    contains `text`: how a race test knows its requests all reached the contended row before it
    lets them go (so the race happens every run, not when the scheduler allows). Returns the
    waiting backends' pids (a test may terminate one)."""

    async def waiting() -> list[int] | None:
        pids = await db.fetchval(
            "SELECT array_agg(pid) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE $1"
            " AND datname = current_database()",
            f"%{text}%",
        )
        return pids if pids and len(pids) >= count else None

    return await eventually(waiting, timeout=within, interval=0.02, what=f"{count} backends waiting on a lock ({text})")


@contextlib.asynccontextmanager
async def holding(db, statement: str, *args, commit: bool = False) -> AsyncIterator[Callable[..., Awaitable[None]]]:
    """Runs `statement` (e.g. `SELECT ... FOR UPDATE`, or an UPDATE another instance would make) in a
    transaction of its own on a connection of `db`, and holds its locks while the block sends the
    racing requests; the block then awaits `release_when_waiting(text, count)`, which returns once
    `count` backends wait on a lock (lock_waiters) and ends the transaction (rolled back, or
    committed with `commit=True`). Leaving the block ends it too, whatever happened."""
    async with db.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        ended = False

        async def end() -> None:
            nonlocal ended
            if not ended:
                ended = True
                await (transaction.commit() if commit else transaction.rollback())

        async def release_when_waiting(text: str, count: int, within: float = 30.0) -> None:
            try:
                await lock_waiters(db, text, count, within)
            finally:
                await end()

        try:
            await conn.execute(statement, *args)
            yield release_when_waiting
        finally:
            if not ended:
                ended = True
                await transaction.rollback()
