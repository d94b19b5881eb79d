"""Flip tickets: a reward drawn server-side, revealed once under concurrent flips, its credit sent
once as reward.granted (reward_id = the ticket), XP added here; nobody flips another's ticket."""

import asyncio
import uuid
from datetime import UTC, datetime

import orjson
import pytest

from analytics_service.repositories import progress as progress_repo
from shared.quota import REWARD_QUOTA_TYPES
from shared.testing.poll import holding

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def _ticket(db, user_id: str) -> str:
    async with db.acquire() as conn, conn.transaction():
        rows = await progress_repo.insert_tickets(
            conn, [(uuid.UUID(user_id), "streak_3", f"test:{uuid.uuid4()}")], datetime.now(UTC)
        )
    return str(rows[0]["id"])


async def _outbox_rewards(db, ticket_id: str) -> list[dict]:
    """The reward.granted events the service wrote to its outbox for this ticket."""
    bodies = await db.fetch("SELECT body FROM outbox_events WHERE event_type = 'reward.granted'")
    events = [orjson.loads(r["body"]) for r in bodies]
    return [e for e in events if e["data"].get("reward_id") == ticket_id]


async def test_concurrent_flips_reveal_one_reward_and_send_it_once(analytics, analytics_db, new_user):
    user = new_user()
    ticket = await _ticket(analytics_db, user.id)
    # The ticket's row is held while eight flips are sent, until all eight wait on a lock: the
    # first on the ticket, the others on the user's progress row it locked first (or, were the
    # ticket read unlocked before that lock, on the first flip's write of it). So every run races
    # them. Eight: the service's pool has ten connections.
    holds_ticket = "SELECT 1 FROM flip_tickets WHERE id = $1 FOR UPDATE"
    async with holding(analytics_db, holds_ticket, uuid.UUID(ticket)) as release_when_waiting:
        flips = [
            asyncio.ensure_future(analytics.post(f"/analytics/flip-tickets/{ticket}/flip", headers=user.headers))
            for _ in range(8)
        ]
        await release_when_waiting("", 8)
        answers = await asyncio.gather(*flips)
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    bodies = [a.json() for a in answers]
    assert sum(b["flipped_now"] for b in bodies) == 1
    rewards = {(b["flip_ticket"]["reward"]["kind"], b["flip_ticket"]["reward"]["amount"]) for b in bodies}
    assert len(rewards) == 1 and all(b["flip_ticket"]["flipped"] for b in bodies)
    kind, amount = rewards.pop()
    table = {(r["kind"], r["amount"]) for r in await analytics_db.fetch("SELECT kind, amount FROM flip_rewards")}
    assert (kind, amount) in table
    sent = await _outbox_rewards(analytics_db, ticket)
    assert len(sent) == 1
    data = sent[0]["data"]
    assert data["reward_id"] == ticket and data["kind"] == kind and data["amount"] == amount
    assert data["quota_type"] == REWARD_QUOTA_TYPES.get(kind)
    # The listing shows it flipped with the same reward.
    listing = (await analytics.get("/analytics/flip-tickets", headers=user.headers)).json()["flip_tickets"]
    assert [(t["id"], t["reward"]["kind"]) for t in listing] == [(ticket, kind)]


async def test_an_xp_reward_is_added_once(analytics, analytics_db, new_user):
    user = new_user()
    ticket = await _ticket(analytics_db, user.id)
    before = (await analytics.get("/analytics/me", headers=user.headers)).json()["xp"]
    # Only the 50 XP row can be drawn for this test (the table is data); restored after.
    saved = await analytics_db.fetch("SELECT code, active FROM flip_rewards")
    await analytics_db.execute("UPDATE flip_rewards SET active = (code = 'xp_50')")
    try:
        first = await analytics.post(f"/analytics/flip-tickets/{ticket}/flip", headers=user.headers)
        again = await analytics.post(f"/analytics/flip-tickets/{ticket}/flip", headers=user.headers)
    finally:
        for r in saved:
            await analytics_db.execute("UPDATE flip_rewards SET active = $2 WHERE code = $1", r["code"], r["active"])
    assert first.json()["flip_ticket"]["reward"] == {"kind": "xp", "amount": 50} and first.json()["flipped_now"]
    assert again.json()["flip_ticket"]["reward"] == {"kind": "xp", "amount": 50} and not again.json()["flipped_now"]
    after = (await analytics.get("/analytics/me", headers=user.headers)).json()["xp"]
    assert after == before + 50


async def test_nobody_flips_another_users_ticket(analytics, analytics_db, new_user, tokens):
    owner, other = new_user(), new_user()
    ticket = await _ticket(analytics_db, owner.id)
    r = await analytics.post(f"/analytics/flip-tickets/{ticket}/flip", headers=other.headers)
    assert r.status_code == 404 and r.json()["detail"]["code"] == "NOT_FOUND"
    r = await analytics.post(f"/analytics/flip-tickets/{uuid.uuid4()}/flip", headers=owner.headers)
    assert r.status_code == 404
    r = await analytics.post("/analytics/flip-tickets/not-a-ticket/flip", headers=owner.headers)
    assert r.status_code == 422
    r = await analytics.post(f"/analytics/flip-tickets/{ticket}/flip", headers=tokens.headers(tokens.service()))
    assert r.status_code == 403
    assert await analytics_db.fetchval("SELECT flipped_at FROM flip_tickets WHERE id = $1", uuid.UUID(ticket)) is None
    assert await _outbox_rewards(analytics_db, ticket) == []
