"""Community's push delivery (notifications/delivery.py, the official exponent-server-sdk) over the
answers Expo publishes (tests/fixtures/providers/expo: its "Send notifications with Expo's Push
API" page), replayed by a small local server - not the sandbox's reading of Expo.

The tickets are Expo's documented ones, each given to the message for the token it names (the
DeviceNotRegistered ticket to `ExponentPushToken[xxxxxxxxxxxxxxxxxxxxxx]`, Expo's `ok` tickets in
order to the others); the receipts are Expo's documented answer (its two `//` comment lines
dropped). The worker runs against its own database, migrated like Community's.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from types import SimpleNamespace

import asyncpg
import pytest_asyncio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from community_service.notifications.delivery import DeliveryWorker, expo_client
from community_service.notifications.kinds import Draft
from community_service.repositories import notifications as repo
from shared.email import FileBackend
from shared.migrate import migrate
from shared.testing.env import create_database, drop_database
from shared.testing.servers import ThreadedServer

EXPO = Path(__file__).parents[1] / "fixtures/providers/expo"
TICKETS_OK = json.loads((EXPO / "push-tickets.ok.json").read_text())["data"]
TICKETS_ERROR_BYTES = (EXPO / "push-tickets.error.json").read_bytes()
TICKET_NOT_REGISTERED, TICKET_OK = json.loads(TICKETS_ERROR_BYTES)["data"]
RECEIPTS = json.loads(
    "\n".join(ln for ln in (EXPO / "push-receipts.ok.jsonc").read_text().splitlines() if "//" not in ln)
)
# The tokens of Expo's documented request (push-send.request.json), in order.
TOKENS = [
    t
    for m in json.loads((EXPO / "push-send.request.json").read_text())
    for t in (m["to"] if isinstance(m["to"], list) else [m["to"]])
]
GONE = TOKENS[0]  # the token Expo's DeviceNotRegistered example names
assert GONE in TICKET_NOT_REGISTERED["message"]


def documented_expo(log: list[dict]) -> Starlette:
    async def send(request: Request) -> Response:
        messages = await request.json()
        log.append({"path": "send", "body": messages})
        if [m["to"] for m in messages] == [GONE, TOKENS[1]]:
            return Response(TICKETS_ERROR_BYTES, media_type="application/json")  # Expo's bytes, as published
        oks = iter(TICKETS_OK)
        tickets = [TICKET_NOT_REGISTERED if m["to"] == GONE else next(oks) for m in messages]
        return Response(json.dumps({"data": tickets}), media_type="application/json")

    async def receipts(request: Request) -> Response:
        log.append({"path": "receipts", "body": await request.json()})
        return Response(json.dumps(RECEIPTS), media_type="application/json")

    return Starlette(
        routes=[
            Route("/--/api/v2/push/send", send, methods=["POST"]),
            Route("/--/api/v2/push/getReceipts", receipts, methods=["POST"]),
        ]
    )


@pytest_asyncio.fixture(loop_scope="session")
async def db(infra, run_id):
    name = f"{run_id}_expo_{uuid.uuid4().hex[:6]}"
    dsn = await create_database(infra, name)
    await migrate(dsn, "community")
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
    yield pool
    await pool.close()
    await drop_database(infra, name)


SETTINGS = SimpleNamespace(
    notification_delivery_poll_seconds=0.1,
    notification_retry_base_seconds=0.2,
    notification_retry_max_seconds=1,
    notification_lease_seconds=5,
    notification_receipt_delay_seconds=0,  # receipts due at once
    notification_delivery_batch=100,
)


async def queue_pushes(db, tokens: list[str]) -> dict[str, str]:
    """One notification per token (each its own user and device), queued for push: token -> user."""
    users = {token: str(uuid.uuid4()) for token in tokens}
    async with db.acquire() as conn, conn.transaction():
        drafts = [
            Draft(u, "subscription", "Welcome to Pro", "Your plan is now Pro.", str(uuid.uuid4()))
            for u in users.values()
        ]
        rows = await repo.insert_many(conn, drafts)
        for token, user in users.items():
            await repo.add_device(conn, user, token, "ios")
        by_user = {r["user_id"]: r["id"] for r in rows}
        await repo.enqueue(conn, [(by_user[u], u, "push", t) for t, u in users.items()])
    return users


async def run_worker(db, server: ThreadedServer, tmp_path) -> DeliveryWorker:
    worker = DeliveryWorker(
        db,
        email=FileBackend(str(tmp_path)),
        push=expo_client(f"{server.url}/--/api/v2", None, 5),
        settings=SETTINGS,
        frontend_url="https://scenextras.test",
    )
    await worker.run_once()  # sends, and fetches the receipts (due at once)
    return worker


async def deliveries(db) -> dict[str, tuple[str, str | None, str | None]]:
    rows = await db.fetch("SELECT device_token, status, ticket_id, last_error FROM notification_deliveries")
    return {r["device_token"]: (r["status"], r["ticket_id"], r["last_error"]) for r in rows}


async def test_expos_documented_error_tickets_drop_the_device_and_the_ok_one_is_delivered(db, tmp_path):
    log: list[dict] = []
    await queue_pushes(db, [GONE, TOKENS[1]])
    with ThreadedServer(documented_expo(log)) as server:
        worker = await run_worker(db, server, tmp_path)
    sent = next(e for e in log if e["path"] == "send")["body"]
    assert sorted(m["to"] for m in sent) == sorted([GONE, TOKENS[1]])
    state = await deliveries(db)
    assert state[GONE] == ("dropped", None, "DeviceNotRegistered")
    # Expo's ok ticket's id is in its documented receipts (status ok): delivered.
    assert TICKET_OK["id"] in RECEIPTS["data"]
    assert state[TOKENS[1]] == ("delivered", TICKET_OK["id"], None)
    assert await db.fetchval("SELECT count(*) FROM notification_devices WHERE token = $1", GONE) == 0
    assert await db.fetchval("SELECT count(*) FROM notification_devices WHERE token = $1", TOKENS[1]) == 1
    receipts_asked = next(e for e in log if e["path"] == "receipts")["body"]
    assert receipts_asked == {"ids": [TICKET_OK["id"]]}
    assert worker.sent == 1 and worker.failures == 0


async def test_receipts_expo_omits_leave_their_rows_waiting(db, tmp_path):
    """Expo's four documented ok tickets for the four recipients of its documented request; its
    documented receipts answer two of them and omit the others ("not ready"): those stay sent."""
    log: list[dict] = []
    await queue_pushes(db, TOKENS[1:] + ["ExponentPushToken[bbbbbbbbbbbbbbbbbbbbbb]"])
    with ThreadedServer(documented_expo(log)) as server:
        await run_worker(db, server, tmp_path)
    state = await deliveries(db)
    by_ticket = {ticket: status for status, ticket, _ in state.values()}
    assert set(by_ticket) == {t["id"] for t in TICKETS_OK}
    for ticket in by_ticket:
        assert by_ticket[ticket] == ("delivered" if ticket in RECEIPTS["data"] else "sent"), ticket
