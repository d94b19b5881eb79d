"""Reports and moderation of fandom rooms and their discussion posts: who may report (whoever may see
the target: a room as GET /rooms/{id} shows it, a post to its room's members), one open report per
user and target, the queue, approve/remove with the audit row; a removed room leaves the lists, reads,
joining and votes; a removed post leaves its room's posts; erasure of reporters, rooms and posts.
The removed room's document WebSocket is in test_room_docs.py."""

from __future__ import annotations

import uuid

from shared.bus.publisher import EventPublisher
from shared.events import make_event

MODERATOR_CLAIMS = {"app_metadata": {"provider": "email", "tier": 0, "roles": ["moderator"]}}


async def _room(client, user, visibility: str) -> dict:
    r = await client.post("/rooms", json={"name": "Report room", "visibility": visibility}, headers=user.headers)
    assert r.status_code == 201, r.text
    return r.json()


async def _join(client, user, room: dict) -> None:
    r = await client.post("/rooms/join", json={"invite_code": room["invite_code"]}, headers=user.headers)
    assert r.status_code == 200 and r.json()["joined"], r.text


async def _post(client, user, room_id: str, body: str = "A post") -> str:
    r = await client.post(f"/rooms/{room_id}/posts", json={"body": body}, headers=user.headers)
    assert r.status_code == 201, r.text
    return r.json()["id"]


async def _report(client, user, target_type: str, target_id: str, reason: str = "abuse"):
    return await client.post(
        "/reports", json={"target_type": target_type, "target_id": target_id, "reason": reason}, headers=user.headers
    )


async def _reports(db, target_type: str, target_id: str) -> list:
    return await db.fetch(
        "SELECT reporter_id, status FROM reports WHERE target_type = $1 AND target_id = $2 ORDER BY created_at",
        target_type,
        uuid.UUID(target_id),
    )


async def test_rooms_and_posts_are_reported_by_whoever_may_see_them(client, new_user, community_db):
    owner, member, outsider = new_user(), new_user(), new_user()
    private = await _room(client, owner, "invite")
    public = await _room(client, owner, "public")
    await _join(client, member, private)
    await _join(client, member, public)
    private_post = await _post(client, member, private["id"])
    public_post = await _post(client, owner, public["id"])

    # Outside an invite-only room neither it nor its posts exist; a public room's posts are its
    # members' (as GET /rooms/{id}/posts); unknown and malformed ids are the same 404.
    for target_type, target_id in (
        ("room", private["id"]),
        ("post", private_post),
        ("post", public_post),
        ("room", str(uuid.uuid4())),
        ("post", str(uuid.uuid4())),
        ("room", "not-a-room"),
        ("post", private["id"]),  # a room's id is no post's
    ):
        r = await _report(client, outsider, target_type, target_id)
        assert r.status_code == 404 and r.json()["detail"]["code"] == "TARGET_NOT_FOUND", (target_type, r.text)
    # Malformed bodies, missing and bad tokens.
    for body in (
        {"target_type": "rooms", "target_id": public["id"], "reason": "x"},
        {"target_type": "post", "target_id": public_post, "reason": ""},
        {"target_type": "post", "target_id": public_post, "reason": "x" * 1001},
        {"target_type": "room", "target_id": "x" * 65, "reason": "x"},
        {"target_type": "room", "target_id": public["id"]},
        {"target_type": "room", "target_id": 12, "reason": "x"},
    ):
        r = await client.post("/reports", json=body, headers=outsider.headers)
        assert r.status_code == 422, (body, r.text)
    r = await client.post("/reports", json={"target_type": "room", "target_id": public["id"], "reason": "x"})
    assert r.status_code == 401
    r = await client.post(
        "/reports",
        json={"target_type": "room", "target_id": public["id"], "reason": "x"},
        headers={"Authorization": "Bearer nope"},
    )
    assert r.status_code == 401
    assert await community_db.fetchval("SELECT count(*) FROM reports WHERE reporter_id = $1", outsider.id) == 0

    # Whoever sees them reports them, once each.
    assert (await _report(client, outsider, "room", public["id"])).status_code == 201
    for target_type, target_id in (("room", private["id"]), ("post", private_post), ("post", public_post)):
        r = await _report(client, member, target_type, target_id, reason="spam")
        assert r.status_code == 201, r.text
        assert r.json() == {"id": r.json()["id"], "target_type": target_type, "target_id": target_id, "status": "open"}
        r = await _report(client, member, target_type, target_id, reason="again")
        assert r.status_code == 409 and r.json()["detail"]["code"] == "ALREADY_REPORTED"
        assert [tuple(x) for x in await _reports(community_db, target_type, target_id)] == [(member.id, "open")]
    # A moderator reviews what was reported, an invite-only room's posts included.
    moderator = new_user(extra_claims=MODERATOR_CLAIMS)
    r = await client.get(f"/rooms/{private['id']}/posts", headers=moderator.headers)
    assert r.status_code == 200 and [p["id"] for p in r.json()["posts"]] == [private_post]
    r = await client.get(f"/rooms/{private['id']}", headers=moderator.headers)
    assert r.status_code == 200 and r.json()["my_role"] is None and r.json()["invite_code"] is None


async def test_moderators_remove_rooms_and_posts_with_an_audit_row(client, new_user, tokens, community_db):
    owner, member, reporter = new_user(), new_user(), new_user()
    moderator = new_user(extra_claims=MODERATOR_CLAIMS)
    room = await _room(client, owner, "public")
    kept_room = await _room(client, owner, "public")
    rid = room["id"]
    for user in (member, reporter):
        await _join(client, user, room)
    bad_post = await _post(client, member, rid, "buy cheap spice")
    good_post = await _post(client, owner, rid, "welcome")
    for target_type, target_id in (("post", bad_post), ("room", rid), ("room", kept_room["id"])):
        assert (await _report(client, reporter, target_type, target_id, reason="spam")).status_code == 201

    # The queue lists rooms and posts; only moderators (or a service) see it and act.
    r = await client.get("/moderation/queue", params={"limit": 200}, headers=moderator.headers)
    queued = {(e["target_type"], e["target_id"]): e for e in r.json()["queue"]}
    assert queued[("post", bad_post)]["reports"] == 1 and queued[("room", rid)]["reasons"] == ["spam"]
    assert (await client.get("/moderation/queue", headers=reporter.headers)).status_code == 403
    for path in (f"/moderation/room/{rid}/remove", f"/moderation/post/{bad_post}/remove"):
        r = await client.post(path, headers=owner.headers)
        assert r.status_code == 403 and r.json()["detail"]["code"] == "MODERATOR_REQUIRED"
        assert (await client.post(path)).status_code == 401
        assert (await client.post(path, headers={"Authorization": "Bearer nope"})).status_code == 401
    for path, status in (
        (f"/moderation/room/{uuid.uuid4()}/remove", 404),
        (f"/moderation/post/{rid}/remove", 404),  # a room's id is no post's
        ("/moderation/post/not-a-post/remove", 404),
        (f"/moderation/rooms/{rid}/remove", 422),
        (f"/moderation/room/{rid}/delete", 422),
        (f"/moderation/room/{'x' * 65}/remove", 422),
    ):
        assert (await client.post(path, headers=moderator.headers)).status_code == status, path
    r = await client.post(f"/moderation/room/{rid}/remove", json={"note": "x" * 1001}, headers=moderator.headers)
    assert r.status_code == 422
    assert await community_db.fetchval("SELECT status FROM rooms WHERE id = $1", uuid.UUID(rid)) == "active"

    # A removed post leaves its room's posts; the other posts stay.
    r = await client.post(f"/moderation/post/{bad_post}/remove", json={"note": "spam"}, headers=moderator.headers)
    assert r.status_code == 200, r.text
    audit = await community_db.fetchrow("SELECT * FROM moderation_actions WHERE id = $1", r.json()["audit_id"])
    assert (audit["target_type"], str(audit["target_id"]), audit["action"], audit["actor_id"], audit["note"]) == (
        "post",
        bad_post,
        "remove",
        moderator.id,
        "spam",
    )
    r = await client.get(f"/rooms/{rid}/posts", headers=member.headers)
    assert [p["id"] for p in r.json()["posts"]] == [good_post]
    assert [tuple(x) for x in await _reports(community_db, "post", bad_post)] == [(reporter.id, "removed")]
    assert (await _report(client, owner, "post", bad_post)).status_code == 404  # nothing to see any more

    # Approve: the reports close, the room stays.
    r = await client.post(f"/moderation/room/{kept_room['id']}/approve", headers=tokens.headers(tokens.service()))
    assert r.status_code == 200 and r.json()["action"] == "approve"
    assert [tuple(x) for x in await _reports(community_db, "room", kept_room["id"])] == [(reporter.id, "approved")]
    assert (await client.get(f"/rooms/{kept_room['id']}", headers=reporter.headers)).status_code == 200

    # Remove a room: gone from the lists, reads, joining, posts, votes and reports for everyone but
    # moderators, who can still read it (with its status).
    r = await client.post(f"/moderation/room/{rid}/remove", headers=moderator.headers)
    assert r.status_code == 200, r.text
    audit = await community_db.fetchrow("SELECT * FROM moderation_actions WHERE id = $1", r.json()["audit_id"])
    assert (audit["target_type"], audit["action"], audit["actor_role"]) == ("room", "remove", "moderator")
    assert [tuple(x) for x in await _reports(community_db, "room", rid)] == [(reporter.id, "removed")]
    r = await client.get("/moderation/queue", params={"limit": 200}, headers=moderator.headers)
    assert not {rid, bad_post} & {e["target_id"] for e in r.json()["queue"]}
    for user in (owner, member):
        for scope in ("public", "mine"):
            r = await client.get("/rooms", params={"scope": scope, "limit": 100}, headers=user.headers)
            listed = [x["id"] for x in r.json()["rooms"]]
            assert rid not in listed, scope
        assert (kept_room["id"] in listed) == (user is owner)  # the owner's other room is still theirs
        r = await client.get(f"/rooms/{rid}", headers=user.headers)
        assert r.status_code == 404 and r.json()["detail"]["code"] == "ROOM_NOT_FOUND"
        assert (await client.get(f"/rooms/{rid}/posts", headers=user.headers)).status_code == 404
        r = await client.post(f"/rooms/{rid}/posts", json={"body": "still here?"}, headers=user.headers)
        assert r.status_code == 404
    r = await client.get(f"/rooms/{rid}", headers=moderator.headers)
    assert r.status_code == 200 and r.json()["status"] == "removed" and r.json()["invite_code"] is None
    r = await client.get(f"/rooms/{rid}/posts", headers=moderator.headers)
    assert r.status_code == 200 and [p["id"] for p in r.json()["posts"]] == [good_post]
    r = await client.post(f"/rooms/{rid}/posts", json={"body": "mod here"}, headers=moderator.headers)
    assert r.status_code == 404  # reading to review, not taking part
    newcomer = new_user()
    r = await client.post("/rooms/join", json={"invite_code": room["invite_code"]}, headers=newcomer.headers)
    assert r.status_code == 404 and r.json()["detail"]["code"] == "INVITE_NOT_FOUND"
    r = await client.post("/rooms/join", json={"room_id": rid}, headers=newcomer.headers)
    assert r.status_code == 404 and r.json()["detail"]["code"] == "ROOM_NOT_FOUND"
    r = await client.put("/votes", json={"target_type": "room", "target_id": rid, "value": 1}, headers=member.headers)
    assert r.status_code == 404 and r.json()["detail"]["code"] == "TARGET_NOT_FOUND"
    assert (await _report(client, newcomer, "room", rid)).status_code == 404
    assert (await _report(client, member, "post", good_post)).status_code == 404  # its room is gone
    assert await community_db.fetchval("SELECT count(*) FROM room_members WHERE room_id = $1", uuid.UUID(rid)) == 3


async def test_erasure_deletes_a_reporters_reports_and_the_reports_on_erased_rooms_and_posts(
    client, new_user, service_env, community_db, eventually
):
    owner, gone_reporter, gone_owner, reporter = new_user(), new_user(), new_user(), new_user()
    kept = await _room(client, owner, "public")
    erased_room = await _room(client, gone_owner, "public")
    for user in (gone_reporter, gone_owner, reporter):
        await _join(client, user, kept)
    await _join(client, reporter, erased_room)
    post_by_gone = await _post(client, gone_owner, kept["id"])  # erased with its author
    post_in_erased = await _post(client, reporter, erased_room["id"])  # erased with its room
    kept_post = await _post(client, owner, kept["id"])
    for target_type, target_id in (("room", kept["id"]), ("post", kept_post)):
        assert (await _report(client, gone_reporter, target_type, target_id)).status_code == 201
        assert (await _report(client, reporter, target_type, target_id)).status_code == 201
    for target_type, target_id in (("room", erased_room["id"]), ("post", post_by_gone), ("post", post_in_erased)):
        assert (await _report(client, reporter, target_type, target_id)).status_code == 201

    publisher = EventPublisher(service_env["RABBITMQ_URL"], "scenextras.events", name="test-publisher")
    try:
        for user in (gone_reporter, gone_owner):
            await publisher.publish(make_event("user.deleted", user.id, {}))
    finally:
        await publisher.close()

    async def erased():
        left = await community_db.fetchval(
            "SELECT count(*) FROM reports WHERE reporter_id = $1", gone_reporter.id
        ) + await community_db.fetchval("SELECT count(*) FROM rooms WHERE owner_id = $1", gone_owner.id)
        return left == 0

    await eventually(erased, timeout=15)
    for target_type, target_id in (("room", erased_room["id"]), ("post", post_by_gone), ("post", post_in_erased)):
        assert await _reports(community_db, target_type, target_id) == [], target_type
    for target_type, target_id in (("room", kept["id"]), ("post", kept_post)):
        assert [tuple(x) for x in await _reports(community_db, target_type, target_id)] == [(reporter.id, "open")]
