"""Votes on fandom rooms: who may vote (a public room: anyone signed in; an invite-only room: its
members, a 404 to everyone else as GET /rooms/{id} is), exact counts under concurrency through the
same batched statement as stories, my_vote on room answers, erasure of voters and of rooms."""

from __future__ import annotations

import asyncio
import uuid

from shared.bus.publisher import EventPublisher
from shared.events import make_event


async def _room(client, user, visibility: str) -> dict:
    r = await client.post("/rooms", json={"name": "Vote room", "visibility": visibility}, headers=user.headers)
    assert r.status_code == 201, r.text
    return r.json()


async def _vote(client, user, room_id: str, value: int):
    return await client.put(
        "/votes", json={"target_type": "room", "target_id": room_id, "value": value}, headers=user.headers
    )


async def _counts(db, room_id: str) -> tuple:
    row = await db.fetchrow("SELECT up, down, score FROM rooms WHERE id = $1", uuid.UUID(room_id))
    table = await db.fetchrow(
        "SELECT count(*) FILTER (WHERE value = 1) AS up, count(*) FILTER (WHERE value = -1) AS down"
        " FROM votes WHERE target_type = 'room' AND target_id = $1",
        uuid.UUID(room_id),
    )
    return (row["up"], row["down"], row["score"]), (table["up"], table["down"], table["up"] - table["down"])


async def test_concurrent_votes_on_a_public_room_are_exact_and_my_vote_is_shown(client, new_user, community_db):
    owner = new_user()
    room = (await _room(client, owner, "public"))["id"]
    voters = [new_user() for _ in range(60)]

    async def vote(user, value):
        r = await _vote(client, user, room, value)
        assert r.status_code == 200, r.text
        return r.json()

    answers = await asyncio.gather(*[vote(u, 1) for u in voters])
    # Each answer is the counters right after its own vote: 1..60 once each.
    assert sorted(a["score"] for a in answers) == list(range(1, 61))
    assert {(a["target_type"], a["my_vote"]) for a in answers} == {("room", 1)}

    async def withdraw(user):
        r = await client.delete(f"/votes/room/{room}", headers=user.headers)
        assert r.status_code == 200, r.text
        assert r.json()["my_vote"] == 0

    # 20 switch to down (each twice at once), 10 withdraw, 30 repeat their up vote.
    await asyncio.gather(
        *[vote(u, -1) for u in voters[:20]],
        *[vote(u, -1) for u in voters[:20]],
        *[withdraw(u) for u in voters[20:30]],
        *[vote(u, 1) for u in voters[30:]],
    )
    stored, from_table = await _counts(community_db, room)
    assert stored == from_table == (30, 20, 10)

    r = await client.get(f"/rooms/{room}", headers=voters[0].headers)
    assert r.status_code == 200, r.text
    assert (r.json()["score"], r.json()["up"], r.json()["down"], r.json()["my_vote"]) == (10, 30, 20, -1)
    assert (await client.get(f"/rooms/{room}", headers=voters[25].headers)).json()["my_vote"] == 0
    assert (await client.get(f"/rooms/{room}", headers=owner.headers)).json()["my_vote"] == 0
    # The public listing carries the counts and the caller's vote too.
    r = await client.get("/rooms", params={"scope": "public", "limit": 100}, headers=voters[40].headers)
    listed = {x["id"]: x for x in r.json()["rooms"]}
    assert (listed[room]["score"], listed[room]["my_vote"]) == (10, 1)
    # Joining answers the room with the joiner's vote.
    r = await client.post("/rooms/join", json={"room_id": room}, headers=voters[0].headers)
    assert r.status_code == 200, r.text
    assert (r.json()["room"]["my_vote"], r.json()["room"]["score"]) == (-1, 10)


async def test_an_invite_only_room_takes_votes_from_its_members_only(client, new_user, community_db):
    owner, member, outsider = new_user(), new_user(), new_user()
    room = await _room(client, owner, "invite")
    rid = room["id"]
    # Not a member: the room does not exist for them (as GET /rooms/{id} says), and nothing changes.
    for attempt in (_vote(client, outsider, rid, 1), client.delete(f"/votes/room/{rid}", headers=outsider.headers)):
        r = await attempt
        assert r.status_code == 404 and r.json()["detail"]["code"] == "TARGET_NOT_FOUND", r.text
    assert (await client.get(f"/rooms/{rid}", headers=outsider.headers)).status_code == 404
    # Unknown and malformed ids, a bad body, no token.
    r = await _vote(client, outsider, str(uuid.uuid4()), 1)
    assert r.status_code == 404 and r.json()["detail"]["code"] == "TARGET_NOT_FOUND"
    r = await _vote(client, outsider, "not-a-room", 1)
    assert r.status_code == 404
    r = await client.put("/votes", json={"target_type": "room", "target_id": rid, "value": 2}, headers=member.headers)
    assert r.status_code == 422
    r = await client.put("/votes", json={"target_type": "rooms", "target_id": rid, "value": 1}, headers=member.headers)
    assert r.status_code == 422
    r = await client.put("/votes", json={"target_type": "room", "target_id": rid, "value": 1})
    assert r.status_code == 401
    r = await client.delete(f"/votes/room/{rid}", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401
    assert await _counts(community_db, rid) == ((0, 0, 0), (0, 0, 0))

    # Members vote, the owner too.
    r = await client.post("/rooms/join", json={"invite_code": room["invite_code"]}, headers=member.headers)
    assert r.status_code == 200, r.text
    assert (await _vote(client, member, rid, 1)).json()["score"] == 1
    r = await _vote(client, owner, rid, -1)
    assert r.status_code == 200 and (r.json()["up"], r.json()["down"]) == (1, 1)
    r = await client.get(f"/rooms/{rid}", headers=member.headers)
    assert (r.json()["score"], r.json()["my_vote"]) == (0, 1)


async def test_erasure_withdraws_a_deleted_voters_room_votes_and_a_deleted_rooms_votes(
    client, new_user, service_env, community_db, eventually
):
    owner, voter, gone = new_user(), new_user(), new_user()
    kept = (await _room(client, owner, "public"))["id"]
    erased_room = (await _room(client, gone, "public"))["id"]
    assert (await _vote(client, voter, kept, 1)).status_code == 200
    assert (await _vote(client, gone, kept, -1)).status_code == 200
    assert (await _vote(client, voter, erased_room, 1)).status_code == 200
    assert (await _counts(community_db, kept))[0] == (1, 1, 0)

    publisher = EventPublisher(service_env["RABBITMQ_URL"], "scenextras.events", name="test-publisher")
    try:
        await publisher.publish(make_event("user.deleted", gone.id, {}))
    finally:
        await publisher.close()

    async def erased():
        return await community_db.fetchval("SELECT count(*) FROM rooms WHERE owner_id = $1", gone.id) == 0

    await eventually(erased, timeout=15)
    # The deleted voter's vote left the counters; the deleted room's votes left the votes table.
    assert await _counts(community_db, kept) == ((1, 0, 1), (1, 0, 1))
    assert await community_db.fetchval("SELECT count(*) FROM votes WHERE user_id = $1", gone.id) == 0
    assert (
        await community_db.fetchval(
            "SELECT count(*) FROM votes WHERE target_type = 'room' AND target_id = $1", uuid.UUID(erased_room)
        )
        == 0
    )
    r = await client.get(f"/rooms/{kept}", headers=voter.headers)
    assert (r.json()["score"], r.json()["my_vote"]) == (1, 1)
