"""reward.granted (Analytics' flip tickets) through the bus: the bonus is added exactly once, whether
the event is redelivered or announced again under another event id; XP rewards are not Payment's."""

from __future__ import annotations

import asyncio
import uuid

from shared.events import make_event


async def test_reward_granted_redelivered_adds_the_bonus_once(client, db, users, eventually):
    user, headers = users.new()
    # Run alone, the test may publish before the consumer has bound its queue (the event would be unrouted).
    await asyncio.wait_for(client.app.state.consumer.ready.wait(), 30)
    publisher = client.app.state.publisher
    await publisher.publish(make_event("user.created", user, {"email": f"{user[:8]}@example.com"}))
    await eventually(lambda: db.fetchval("SELECT count(*) = 1 FROM user_quotas WHERE user_id = $1", uuid.UUID(user)))
    ticket = str(uuid.uuid4())
    data = {
        "reward_id": ticket,
        "flip_ticket_id": ticket,
        "kind": "bonus_messages",
        "amount": 5,
        "quota_type": "regular",
    }
    granted = make_event("reward.granted", user, data, source="analytics_service")
    again = make_event("reward.granted", user, data, source="analytics_service")  # same reward, new event id
    xp = make_event("reward.granted", user, {**data, "reward_id": str(uuid.uuid4()), "kind": "xp", "amount": 50})
    image = make_event(
        "reward.granted",
        user,
        {**data, "reward_id": str(uuid.uuid4()), "kind": "image_credits", "amount": 2, "quota_type": "image_gen"},
    )
    for e in (granted, granted, again, xp, image, granted):
        await publisher.publish(e)
    await eventually(
        lambda: db.fetchval(
            "SELECT count(*) = 4 FROM processed_events WHERE event_id = ANY($1::uuid[])",
            [uuid.UUID(e.event_id) for e in (granted, again, xp, image)],
        )
    )
    await asyncio.sleep(0.3)  # a late duplicate would land now
    row = await db.fetchrow("SELECT bonus_quota, bonus_image_gen FROM user_quotas WHERE user_id = $1", uuid.UUID(user))
    assert (row["bonus_quota"], row["bonus_image_gen"]) == (5, 2)
    assert await db.fetchval("SELECT count(*) FROM reward_grants WHERE user_id = $1", uuid.UUID(user)) == 2
    quota = (await client.get("/quota", headers=headers)).json()["quotas"]
    assert quota["regular"]["remaining"] == 10  # 5 daily + 5 bonus
    assert quota["image_gen"]["remaining"] == 2

    # user.deleted erases the grants with the rest of the user's payment data.
    from shared.bus import emit

    async with db.acquire() as conn, conn.transaction():
        await emit(conn, make_event("user.deleted", user, {}))
    await eventually(lambda: db.fetchval("SELECT count(*) = 0 FROM reward_grants WHERE user_id = $1", uuid.UUID(user)))
    assert await db.fetchval("SELECT count(*) FROM user_quotas WHERE user_id = $1", uuid.UUID(user)) == 0
