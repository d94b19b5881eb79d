"""Payment's background sweeper: gives back expired quota reservations, applies free daily resets,
settles tiers whose time ran out (grace period, RevenueCat expiry, scheduled downgrade), and
deletes finished reservations after the retention period. Safe on several instances at once
(SKIP LOCKED in the SQL functions, row locks here)."""

from __future__ import annotations

import asyncio
import logging

from payment_service.repositories import billing as repo
from payment_service.webhook_effects import after_commit
from shared.tasks import cancel_and_wait

log = logging.getLogger("payment.sweeper")


async def sweep_once(app) -> dict[str, int]:
    state = app.state
    pool = state.core_db
    async with pool.acquire() as conn:
        async with conn.transaction():
            expired = await repo.sweep_expired_reservations(conn)
        async with conn.transaction():
            reset = await repo.sweep_daily_resets(conn)
        applied = []
        for user_id in await repo.users_needing_reconcile(conn):
            async with conn.transaction():
                a = await state.billing.reconcile(conn, user_id)
            if a is not None:
                applied.append(a)
        deleted = await repo.delete_old_reservations(conn, state.settings.reservation_retention_days)
    await state.quota.drop_cache(*set(expired + reset))
    await after_commit(state, applied)
    return {"expired": len(set(expired)), "reset": len(reset), "reconciled": len(applied), "deleted": deleted}


class Sweeper:
    def __init__(self, app, interval: float):
        self.app = app
        self.interval = interval
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        if self.interval > 0:
            self._task = asyncio.create_task(self._run(), name="payment-sweeper")

    async def _run(self) -> None:
        while True:
            try:
                result = await sweep_once(self.app)
                if any(result.values()):
                    log.info("sweep", extra=result)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("sweep failed; will retry", extra={"error": repr(exc)})
            await asyncio.sleep(self.interval)

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
