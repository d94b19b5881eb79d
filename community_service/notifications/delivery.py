"""Email and push delivery from the `notification_deliveries` table, off the consumer's path.

The consumer only inserts delivery rows (in its transaction); this worker (one per process) claims
due rows with a lease (`FOR UPDATE SKIP LOCKED`, so workers of several processes never take the
same row), sends them, and records the outcome. A provider that fails or does not answer moves the
rows back-off later (RETRY_BASE doubling up to RETRY_MAX, with jitter), without limit: an outage
delays a notification, never loses it. A row is sent at least once; a worker that dies between the
provider accepting and the row being marked sends it again after the lease (rare, accepted).

Push goes through Expo with the official `exponent-server-sdk` (sync, requests), always in a thread.
Tickets: `DeviceNotRegistered` drops the token; receipts are fetched `receipt_delay` later (Expo
keeps them a day) and a `DeviceNotRegistered` receipt drops the token too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import requests
from exponent_server_sdk import (
    DeviceNotRegisteredError,
    MessageRateExceededError,
    PushClient,
    PushMessage,
    PushServerError,
    PushTicket,
    PushTicketError,
)

from community_service.repositories import notifications as repo
from shared.email import Email, EmailBackend, EmailDeliveryError
from shared.tasks import cancel_and_wait

log = logging.getLogger("community_service.notifications.delivery")

RECEIPT_WINDOW = timedelta(hours=24)  # Expo keeps receipts this long


class TransientError(Exception):
    """The provider did not take it this time: try again later."""


def expo_client(base_url: str, access_token: str | None, timeout: float) -> PushClient:
    """The SDK joins `host` and `api_url` (`https://exp.host` + `/--/api/v2`): split the setting so
    it can point anywhere (the sandbox in tests)."""
    parts = urlsplit(base_url.rstrip("/"))
    session = requests.Session()
    session.headers.update(
        {"accept": "application/json", "accept-encoding": "gzip, deflate", "content-type": "application/json"}
    )
    if access_token:
        session.headers["Authorization"] = f"Bearer {access_token}"
    return PushClient(host=f"{parts.scheme}://{parts.netloc}", api_url=parts.path, session=session, timeout=timeout)


class DeliveryWorker:
    def __init__(self, pool, *, email: EmailBackend, push: PushClient, settings, frontend_url: str):
        self.pool = pool
        self.email = email
        self.push = push
        self.poll = settings.notification_delivery_poll_seconds
        self.retry_base = settings.notification_retry_base_seconds
        self.retry_max = settings.notification_retry_max_seconds
        self.lease = settings.notification_lease_seconds
        self.receipt_delay = settings.notification_receipt_delay_seconds
        self.batch = settings.notification_delivery_batch
        self.preferences_url = frontend_url.rstrip("/") + "/settings/notifications"
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.sent = 0
        self.failures = 0

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="notifications:delivery")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)

    async def _run(self) -> None:
        while True:
            try:
                busy = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("delivery round failed")
                busy = False
            if not busy:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll)

    async def run_once(self) -> bool:
        """One round: due deliveries, then due receipts. True when there may be more to do now."""
        async with self.pool.acquire() as conn:
            due = await repo.claim_due(conn, self.batch, self.lease)
        if due:
            emails = [r for r in due if r["channel"] == "email"]
            pushes = [r for r in due if r["channel"] == "push"]
            await asyncio.gather(self._send_emails(emails), self._send_pushes(pushes))
        async with self.pool.acquire() as conn:
            receipts = await repo.claim_receipts(conn, 1000, self.lease)
        if receipts:
            await self._check_receipts(receipts)
        return len(due) == self.batch

    def backoff(self, attempts: int) -> float:
        delay = min(self.retry_max, self.retry_base * 2 ** max(0, attempts - 1))
        return delay * random.uniform(0.75, 1.0)

    async def _retry(self, rows, error: str) -> None:
        self.failures += len(rows)
        async with self.pool.acquire() as conn:
            await repo.retry_later(conn, [r["id"] for r in rows], [self.backoff(r["attempts"]) for r in rows], error)

    # Email ------------------------------------------------------------------------------------

    def _email(self, row) -> Email:
        text = f"{row['body']}\n\nChoose which emails you get: {self.preferences_url}\n"
        return Email(row["email"], row["title"], text, f"notification.{row['kind']}", {"kind": row["kind"]})

    async def _send_emails(self, rows) -> None:
        if not rows:
            return
        no_address = [r for r in rows if not r["email"]]
        if no_address:  # erased or never known since the row was queued
            async with self.pool.acquire() as conn:
                await repo.finish(conn, [r["id"] for r in no_address], "dropped", "no email address")
        sem = asyncio.Semaphore(10)

        async def one(row):
            async with sem:
                try:
                    await self.email.send(self._email(row))
                except (EmailDeliveryError, OSError) as exc:
                    log.warning("email not delivered; will retry", extra={"delivery_id": row["id"], "error": str(exc)})
                    await self._retry([row], f"email: {exc}")
                    return
            async with self.pool.acquire() as conn:
                await repo.mark_sent(conn, [row["id"]], [None], 0)
            self.sent += 1

        await asyncio.gather(*(one(r) for r in rows if r["email"]))

    # Push -------------------------------------------------------------------------------------

    def _message(self, row) -> PushMessage:
        data = {"notification_id": str(row["notification_id"]), "kind": row["kind"], "seq": row["seq"]}
        return PushMessage(to=row["device_token"], title=row["title"], body=row["body"], data=data, sound="default")

    async def _send_pushes(self, rows) -> None:
        if not rows:
            return
        valid = [r for r in rows if PushClient.is_exponent_push_token(r["device_token"])]
        invalid = [r for r in rows if not PushClient.is_exponent_push_token(r["device_token"])]
        if invalid:
            async with self.pool.acquire() as conn:
                await repo.finish(conn, [r["id"] for r in invalid], "failed", "not an Expo push token")
        if not valid:
            return
        try:
            tickets = await asyncio.to_thread(self.push.publish_multiple, [self._message(r) for r in valid])
        except (PushServerError, requests.RequestException, ValueError) as exc:
            log.warning("push not delivered; will retry", extra={"count": len(valid), "error": repr(exc)[:300]})
            await self._retry(valid, f"push: {exc!r}"[:500])
            return
        sent_ids, sent_tickets, retry, failed, dropped = [], [], [], [], []
        for row, ticket in zip(valid, tickets, strict=True):
            try:
                ticket.validate_response()
            except DeviceNotRegisteredError:
                dropped.append(row)
            except MessageRateExceededError:
                retry.append(row)
            except PushTicketError as exc:
                failed.append((row, exc.message))
            else:
                sent_ids.append(row["id"])
                sent_tickets.append(ticket.id or None)
        async with self.pool.acquire() as conn, conn.transaction():
            if sent_ids:
                await repo.mark_sent(conn, sent_ids, sent_tickets, self.receipt_delay)
            for row in dropped:
                await repo.drop_device(conn, row["device_token"])
            for row, message in failed:
                await repo.finish(conn, [row["id"]], "failed", message)
        self.sent += len(sent_ids)
        if retry:
            await self._retry(retry, "push: MessageRateExceeded")

    async def _check_receipts(self, rows) -> None:
        tickets = [PushTicket(None, "ok", "", None, r["ticket_id"]) for r in rows]
        try:
            receipts = await asyncio.to_thread(self.push.check_receipts_multiple, tickets)
        except (PushServerError, requests.RequestException, ValueError) as exc:
            log.warning("push receipts not fetched; will retry", extra={"error": repr(exc)[:300]})
            return  # the lease makes them due again
        by_ticket = {r.id: r for r in receipts}
        now = datetime.now(UTC)
        async with self.pool.acquire() as conn, conn.transaction():
            for row in rows:
                receipt = by_ticket.get(row["ticket_id"])
                if receipt is None:
                    if row["sent_at"] is not None and now - row["sent_at"] > RECEIPT_WINDOW:
                        await repo.finish(conn, [row["id"]], "sent", "no receipt within 24 h")
                    continue  # not ready yet: due again after the lease
                try:
                    receipt.validate_response()
                except DeviceNotRegisteredError:
                    await repo.finish(conn, [row["id"]], "dropped", "DeviceNotRegistered")
                    await repo.drop_device(conn, row["device_token"])
                except PushTicketError as exc:
                    await repo.finish(conn, [row["id"]], "failed", exc.message)
                else:
                    await repo.finish(conn, [row["id"]], "delivered", None)
