"""The quota client Chat, Media and Community use: one atomic reserve before the expensive work,
a settle (or release) after it.

It calls the SQL functions Payment's migrations define in the shared core database
(`quota_reserve`, `quota_settle`, `quota_release`, `quota_snapshot`), so concurrent requests,
on any number of instances, can never spend more than remains. A reservation nobody settles (a
crashed worker) expires and is given back by the database.

    quota = QuotaClient(app.state.core_db, app.state.redis, app.state.keys)
    async with quota.reserved(user.user_id, "premium") as reservation:
        reply = await call_the_llm(...)
        reservation.actual = 1          # optional: charge less than reserved (0: give it all back)
    # settled on success, released when the block raises (InsufficientQuota: nothing reserved)
    async with quota.reserved(user.user_id, ["regular", "premium"]) as (regular, premium): ...

The Redis cache of `remaining()` (`keys("quota", user_id)`, at most 5 minutes) is dropped whenever
a call through this client changes what remains (a settle that charges the whole reservation does
not: the reserve already took it).

Reserves made while another reserve call is in flight are coalesced: they go to PostgreSQL together
in one `quota_reserve_many()` call (each applied on its own, exactly as `quota_reserve()` would),
so under load one round trip carries many; a reserve alone goes straight to `quota_reserve()`.
Every caller still gets its own answer or its own error (_ReserveBatcher).

Each call is its own single-statement transaction and asks the function to commit asynchronously
(no wait for the WAL flush): a database crash can forget the last fraction of a second of quota
operations, as whole transactions, never as an overspend (docs/payment.md). Other services' test
databases need Payment's migrations: `await shared.migrate.migrate(DATABASE_URL, "payment")`.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import overload

import asyncpg
import orjson
from redis.exceptions import RedisError

from shared.db import retry_unavailable
from shared.errors import INSUFFICIENT_QUOTA, APIError
from shared.redis import pending_writes, replay_pending
from shared.tiers import QUOTA_TYPES, UNLIMITED

log = logging.getLogger("shared.quota")

QUOTA_CACHE_TTL_SECONDS = 300
# Quota types with a bonus balance (spent after the tier's allowance, never reset), and the reward
# kinds (Analytics' flip tickets, `reward.granted`) that credit each. Payment's quota_grant_reward()
# adds a reward once per reward id (migration 007).
BONUS_QUOTA_TYPES = ("regular", "premium", "image_gen")
REWARD_QUOTA_TYPES = {"bonus_messages": "regular", "premium_messages": "premium", "image_credits": "image_gen"}
# Reserves coalesced into one quota_reserve_many() call: at most this many per call (each item is
# a subtransaction; PostgreSQL caches 64 subtransaction ids per backend), and this many calls in
# flight at once (measured in bench/bench_payment.py).
RESERVE_BATCH_MAX = 48
RESERVES_IN_FLIGHT = 2

_RESERVE_ONE = "SELECT reservation_id, remaining, reset_at FROM quota_reserve($1::uuid, $2, $3, $4, true)"
_RESERVE_MANY = (
    "SELECT item, reservation_id, remaining, reset_at, error_code, error_message"
    " FROM quota_reserve_many($1::uuid[], $2::text[], $3::int[], $4, true)"
)


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


class InsufficientQuota(APIError):
    """402 INSUFFICIENT_QUOTA, with quota_type, remaining, requested and reset_at in the envelope."""

    def __init__(self, quota_type: str, remaining: int, reset_at: datetime | None, requested: int = 1):
        when = f" It resets at {_iso(reset_at)}." if reset_at else ""
        super().__init__(
            INSUFFICIENT_QUOTA.status,
            INSUFFICIENT_QUOTA.code,
            f"Not enough {quota_type} quota: {remaining} left, {requested} needed.{when}",
            quota_type=quota_type,
            remaining=remaining,
            requested=requested,
            reset_at=_iso(reset_at),
        )
        self.quota_type = quota_type
        self.remaining = remaining
        self.reset_at = reset_at
        self.requested = requested


@dataclass
class Reservation:
    reservation_id: str
    user_id: str
    quota_type: str
    amount: int
    remaining: int  # after this reservation; -1 = unlimited
    reset_at: datetime | None
    # Set inside `reserved(...)` to charge less than reserved (None = the full amount, 0 = release).
    actual: int | None = field(default=None, compare=False)

    @property
    def unlimited(self) -> bool:
        return self.remaining == UNLIMITED


def _check(quota_type: str, amount: int) -> None:
    if quota_type not in QUOTA_TYPES:
        raise ValueError(f"unknown quota type {quota_type!r}; one of {', '.join(QUOTA_TYPES)}")
    if not isinstance(amount, int) or isinstance(amount, bool) or amount < 0:
        raise ValueError(f"quota amount must be a non-negative int, got {amount!r}")


class _Invalidator:
    """Cache drops grouped like a group commit: while one DEL is in flight, the keys of every other
    caller wait for the next DEL, which drops them all at once. Each caller still waits until its key
    is gone, so nothing is weaker than one DEL per change; under load it is one round trip for many."""

    def __init__(self, redis):
        self.redis = redis
        self._pending: set[str] = set()
        self._waiters: list[asyncio.Future] = []
        self._running = False
        self._flusher: asyncio.Task | None = None

    async def drop(self, keys: list[str]) -> None:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._pending.update(keys)
        self._waiters.append(fut)
        if not self._running:
            self._running = True
            self._flusher = loop.create_task(self._flush())  # kept: the loop holds tasks weakly
        await fut

    async def _flush(self) -> None:
        try:
            while self._pending:
                keys, waiters = list(self._pending), self._waiters
                self._pending, self._waiters = set(), []
                error: BaseException | None = None
                try:
                    await self.redis.delete(*keys)
                except (RedisError, OSError) as exc:
                    error = exc
                for w in waiters:
                    if not w.done():
                        w.set_result(error)
        finally:
            self._running = False


class _ReserveBatcher:
    """Reserves coalesced like a group commit: while a reserve call is in flight, the reserves that
    arrive wait for the next call, which carries them all to quota_reserve_many() in one round trip
    (one alone goes to quota_reserve() as before). The database applies each item on its own, under
    the user's row lock, in user-id order; each caller gets exactly its own answer (or its own error)
    after the quota cache of every user whose quota changed is dropped, in one DEL.

    A call that fails as a whole (the connection dropped) fails every caller in it; its transaction
    either committed (the reservations are held, nobody was told, and they expire back) or did not:
    never an overspend, exactly as for a single reserve whose answer is lost. A caller cancelled
    while waiting is left out of the next call; one cancelled while its call is in flight has its
    reservation released."""

    def __init__(self, client: QuotaClient):
        self.client = client
        self._queue: list[tuple[uuid.UUID, str, int, asyncio.Future]] = []
        self._running = 0
        self._tasks: set[asyncio.Task] = set()
        self.calls = 0  # round trips made, and the largest number of reserves one carried
        self.largest = 0

    def submit(self, user: uuid.UUID, quota_type: str, amount: int) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._queue.append((user, quota_type, amount, fut))
        if self._running < self.client.reserves_in_flight:
            self._running += 1
            self._spawn(self._flush())
        return fut

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _flush(self) -> None:
        try:
            while self._queue:
                batch = [i for i in self._queue[: self.client.max_reserve_batch] if not i[3].done()]
                del self._queue[: self.client.max_reserve_batch]
                if not batch:
                    continue
                try:
                    answers = await self._call(batch)
                except asyncio.CancelledError:
                    for *_, fut in batch:
                        fut.cancel()
                    raise
                except Exception as exc:
                    for *_, fut in batch:
                        if not fut.done():
                            fut.set_exception(exc if len(batch) == 1 else _copy_error(exc))
                    continue
                # The cache drop runs beside the next call; each caller is answered after it.
                self._spawn(self._deliver(batch, answers))
        finally:
            self._running -= 1

    async def _call(self, batch: list) -> list:
        client = self.client
        self.calls += 1
        self.largest = max(self.largest, len(batch))
        if len(batch) == 1:
            user, quota_type, amount, _ = batch[0]
            row = await client.pool.fetchrow(_RESERVE_ONE, user, quota_type, amount, client.reservation_ttl)
            return [(row["reservation_id"], row["remaining"], row["reset_at"])]
        rows = await client.pool.fetch(
            _RESERVE_MANY,
            [b[0] for b in batch],
            [b[1] for b in batch],
            [b[2] for b in batch],
            client.reservation_ttl,
        )
        answers: list = [None] * len(batch)
        for row in rows:
            code = row["error_code"]
            if code is None:
                answers[row["item"] - 1] = (row["reservation_id"], row["remaining"], row["reset_at"])
            else:
                answers[row["item"] - 1] = asyncpg.PostgresError.new(
                    {"S": "ERROR", "C": code, "M": row["error_message"]}, query=_RESERVE_MANY
                )
        return answers

    async def _deliver(self, batch: list, answers: list) -> None:
        changed = {
            str(b[0])
            for b, a in zip(batch, answers, strict=True)
            if isinstance(a, tuple) and a[0] is not None and a[1] != UNLIMITED
        }
        if changed:
            try:
                await self.client.drop_cache(*changed)
            except Exception:  # drop_cache reports Redis trouble itself; nothing may keep an answer back
                log.exception("quota cache drop failed")
        for (*_, fut), answer in zip(batch, answers, strict=True):
            if fut.done():  # the caller gave up while its reserve was in flight: give it back
                if isinstance(answer, tuple) and answer[0] is not None:
                    self._spawn(self._release_abandoned(str(answer[0])))
            elif isinstance(answer, BaseException):
                fut.set_exception(answer)
            else:
                fut.set_result(answer)

    async def _release_abandoned(self, reservation_id: str) -> None:
        try:
            await self.client.release(reservation_id)
        except Exception:
            log.warning("abandoned reservation not released; it expires", extra={"reservation_id": reservation_id})


def _copy_error(exc: BaseException) -> BaseException:
    """One exception object per caller: a shared one would collect every caller's traceback."""
    try:
        return copy.copy(exc)
    except Exception:
        return exc


class QuotaClient:
    def __init__(
        self,
        core_pool,
        redis=None,
        keys=None,
        *,
        cache_ttl_seconds: int = QUOTA_CACHE_TTL_SECONDS,
        reservation_ttl_seconds: int = 600,
        max_reserve_batch: int = RESERVE_BATCH_MAX,
        reserves_in_flight: int = RESERVES_IN_FLIGHT,
    ):
        self.pool = core_pool
        self.redis = redis
        self.keys = keys
        self.cache_ttl = cache_ttl_seconds
        self.reservation_ttl = reservation_ttl_seconds
        if not 1 <= max_reserve_batch <= RESERVE_BATCH_MAX:
            raise ValueError(f"max_reserve_batch must be 1..{RESERVE_BATCH_MAX}")
        self.max_reserve_batch = max_reserve_batch
        self.reserves_in_flight = max(1, reserves_in_flight)
        self._invalidator: _Invalidator | None = None
        self._reserves: _ReserveBatcher | None = None

    # -------------------------------------------------------------------------------- cache
    def cache_key(self, user_id: str) -> str | None:
        """The Redis key of `remaining()`'s cache, for a caller that reads it together with
        other keys (then passes the value to `remaining(..., cached=)`)."""
        return self.keys("quota", user_id) if self.keys is not None else None

    async def drop_cache(self, *user_ids: str) -> None:
        if self.redis is None or self.keys is None or not user_ids:
            return
        if self._invalidator is None:
            self._invalidator = _Invalidator(self.redis)
        keys = [self.keys("quota", str(u)) for u in user_ids]
        error = await self._invalidator.drop(keys)
        if error is not None:
            # Replayed before this process's next use of the cache (shared.redis.PendingCacheWrites).
            for key in keys:
                pending_writes(self.redis).remember_delete(key)
            log.warning("quota cache not dropped: redis unavailable; will replay", extra={"error": repr(error)})

    # ------------------------------------------------------------------------------ actions
    async def reserve(self, user_id: str, quota_type: str, amount: int = 1) -> Reservation:
        """Reserve `amount` of `quota_type`, or raise InsufficientQuota (nothing reserved)."""
        _check(quota_type, amount)
        try:
            user = user_id if isinstance(user_id, uuid.UUID) else uuid.UUID(str(user_id))
        except (ValueError, TypeError, AttributeError):
            raise ValueError(f"user_id must be a UUID, got {user_id!r}") from None
        if self._reserves is None:
            self._reserves = _ReserveBatcher(self)
        reservation_id, remaining, reset_at = await self._reserves.submit(user, quota_type, amount)
        if reservation_id is None:
            raise InsufficientQuota(quota_type, remaining, reset_at, requested=amount)
        return Reservation(
            reservation_id=str(reservation_id),
            user_id=str(user_id),
            quota_type=quota_type,
            amount=amount,
            remaining=remaining,
            reset_at=reset_at,
        )

    async def settle(self, reservation_id: str, actual: int | None = None) -> None:
        """Charge `actual` (None: what was reserved; never more) and give back the rest. Idempotent."""
        if actual is not None and (not isinstance(actual, int) or actual < 0):
            raise ValueError(f"actual must be a non-negative int or None, got {actual!r}")
        # Retried while the database is briefly away: the work was done and saved, so a settle
        # lost to a dropped connection would let the reservation expire and be given back.
        # `gives_back` is read from the reservation as it was before this settle (the statement's
        # snapshot; quota_settle's own writes come later): a held, limited reservation charged less
        # than its amount. Only then does what remains change (the reserve already took the whole
        # amount), so only then is the cached remaining() dropped; a full charge (the usual case)
        # spares the Redis round trip. A retried call cannot tell (its first try may have settled
        # before the connection dropped, and the retry then sees it settled): it drops the cache.
        tries = 0

        async def call():
            nonlocal tries
            tries += 1
            return await self.pool.fetchrow(
                "SELECT quota_settle($1::uuid, $2, true) AS remaining, r.user_id::text AS user_id,"
                " r.state = 'held' AND NOT r.unlimited"
                " AND LEAST(GREATEST(COALESCE($2, r.amount), 0), r.amount) < r.amount AS gives_back"
                " FROM (SELECT 1) AS one LEFT JOIN quota_reservations r ON r.id = $1::uuid",
                reservation_id,
                actual,
            )

        row = await retry_unavailable(call)
        if row["user_id"] is None:
            log.warning("settle of an unknown reservation ignored", extra={"reservation_id": reservation_id})
            return
        if row["gives_back"] or tries > 1:
            await self.drop_cache(row["user_id"])

    async def release(self, reservation_id: str) -> None:
        """Give the whole reservation back (the work failed). Idempotent."""
        row = await retry_unavailable(
            lambda: self.pool.fetchrow(
                "SELECT quota_release($1::uuid, true) AS remaining,"
                " (SELECT user_id::text FROM quota_reservations WHERE id = $1::uuid) AS user_id",
                reservation_id,
            )
        )
        if row["user_id"] is None:
            log.warning("release of an unknown reservation ignored", extra={"reservation_id": reservation_id})
            return
        await self.drop_cache(row["user_id"])

    async def remaining(self, user_id: str, cached: bytes | None = None) -> dict:
        """Per quota type: {"remaining": int (-1 unlimited), "reset_at": iso | None}; cached ≤ 5 min.
        `cached`: the cache's value, when the caller already read it."""
        if cached:
            return orjson.loads(cached)
        key = self.cache_key(user_id)
        if self.redis is not None and key is not None:
            try:
                await replay_pending(self.redis)  # invalidations that failed during an outage come first
                cached = await self.redis.get(key)
                if cached:
                    return orjson.loads(cached)
            except (RedisError, OSError) as exc:
                log.warning("quota cache unavailable; reading the database", extra={"error": repr(exc)})
                key = None
        rows = await self.pool.fetch("SELECT quota_type, remaining, reset_at FROM quota_snapshot($1::uuid)", user_id)
        result = {r["quota_type"]: {"remaining": r["remaining"], "reset_at": _iso(r["reset_at"])} for r in rows}
        if self.redis is not None and key is not None:
            ttl = self.cache_ttl
            resets = [r["reset_at"] for r in rows if r["reset_at"] is not None]
            if resets:
                # Never serve a cached value past the next reset.
                until = (min(resets) - datetime.now(UTC)).total_seconds()
                ttl = max(1, min(ttl, int(until)))
            try:
                await self.redis.set(key, orjson.dumps(result), ex=ttl)
            except (RedisError, OSError):
                pass
        return result

    @overload
    def reserved(self, user_id: str, quota_type: str, amount: int = 1) -> AbstractAsyncContextManager[Reservation]: ...

    @overload
    def reserved(
        self, user_id: str, quota_type: Sequence[str], amount: int = 1
    ) -> AbstractAsyncContextManager[list[Reservation]]: ...

    def reserved(self, user_id, quota_type, amount=1):
        """Reserve, run the block, then settle (success) or release (any exception, cancellation
        included). `quota_type` one type: yields its Reservation; a list of types: yields one
        Reservation per type, in order (an empty list reserves nothing), all or nothing: if a
        later one is refused, the earlier ones are released before InsufficientQuota propagates.

        Inside the block, `reservation.actual = n` charges n (≤ the amount); `actual = 0` gives it
        all back as a release (the work produced nothing chargeable). A settle or release that
        fails after its retries is logged, not raised: the work is done (or failed) either way,
        and a reservation nobody finishes expires and is given back by the database."""
        if isinstance(quota_type, str):
            return self._reserved_one(user_id, quota_type, amount)
        return self._reserved_each(user_id, list(quota_type), amount)

    @asynccontextmanager
    async def _reserved_one(self, user_id: str, quota_type: str, amount: int) -> AsyncIterator[Reservation]:
        async with self._reserved_each(user_id, [quota_type], amount) as (reservation,):
            yield reservation

    @asynccontextmanager
    async def _reserved_each(
        self, user_id: str, quota_types: list[str], amount: int
    ) -> AsyncIterator[list[Reservation]]:
        held: list[Reservation] = []
        try:
            for qt in quota_types:
                held.append(await self.reserve(user_id, qt, amount))
        except BaseException:
            await asyncio.shield(self._finish(held, charge=False))
            raise
        async with self._settling(held):
            yield held

    @asynccontextmanager
    async def settling(self, reservation: Reservation) -> AsyncIterator[Reservation]:
        """For a reservation made by `reserve`: run the block, then settle it (success) or release
        it (any exception, cancellation included), as `reserved` does."""
        async with self._settling([reservation]):
            yield reservation

    @asynccontextmanager
    async def _settling(self, held: list[Reservation]) -> AsyncIterator[list[Reservation]]:
        try:
            yield held
        except BaseException:
            # Shielded: a second cancellation (a shutdown) must not leave the quota held.
            await asyncio.shield(self._finish(held, charge=False))
            raise
        await self._finish(held, charge=True)

    async def _finish(self, held: list[Reservation], *, charge: bool) -> None:
        for r in held:
            settle = charge and r.actual != 0
            try:
                if settle:
                    await self.settle(r.reservation_id, r.actual)
                else:
                    await self.release(r.reservation_id)
            except Exception:
                what = "settle" if settle else "release"
                log.exception(
                    f"quota {what} failed; the reservation expires on its own",
                    extra={"reservation_id": r.reservation_id},
                )


__all__ = ["InsufficientQuota", "Reservation", "QuotaClient", "QUOTA_CACHE_TTL_SECONDS"]
