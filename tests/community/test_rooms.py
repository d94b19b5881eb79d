"""Fandom rooms over HTTP: creation, invite and public joins, referral joins recorded by Auth (a
real Auth process), roles, posts, listing with cursors, events, erasure; hostile cases on every route."""

from __future__ import annotations

import asyncio
import json
import uuid
from types import SimpleNamespace

import httpx
import pytest_asyncio

from shared.bus.publisher import EventPublisher
from shared.events import make_event

PASSWORD = "correct horse battery staple 1"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def rooms_client(make_client, room_env):
    async with make_client("community", **room_env) as c:
        yield c


async def _room(client, user, **body) -> dict:
    r = await client.post("/rooms", json={"name": "Fans of Dune", "visibility": "invite", **body}, headers=user.headers)
    assert r.status_code == 201, r.text
    return r.json()


async def _story(client, user, body: str = "Once upon a time.") -> str:
    story = (await client.post("/stories", json={}, headers=user.headers)).json()["id"]
    r = await client.patch(
        f"/stories/{story}", json={"title": "T", "body": body}, headers={**user.headers, "If-Match": '"1"'}
    )
    assert r.status_code == 200, r.text
    return story


async def _events(db, event_type: str, room_id: str) -> list[dict]:
    rows = await db.fetch(
        "SELECT body FROM outbox_events"
        " WHERE event_type = $1 AND convert_from(body, 'UTF8')::jsonb->'data'->>'room_id' = $2",
        event_type,
        room_id,
    )
    return [json.loads(r["body"])["data"] for r in rows]


async def test_create_get_and_privacy(rooms_client, new_user, community_db):
    owner, other = new_user(), new_user()
    story = await _story(rooms_client, owner)
    room = await _room(rooms_client, owner, story_id=story, description="spice")
    assert room["my_role"] == "owner" and room["invite_code"] and room["story_id"] == story
    assert room["member_count"] == 1
    r = await rooms_client.get(f"/rooms/{room['id']}", headers=owner.headers)
    assert r.status_code == 200
    assert r.json()["members"] == [
        {"user_id": owner.id, "role": "owner", "joined_at": r.json()["members"][0]["joined_at"]}
    ]
    # An invite-only room does not exist for anyone outside it.
    assert (await rooms_client.get(f"/rooms/{room['id']}", headers=other.headers)).status_code == 404
    for path in (f"/rooms/{room['id']}/posts",):
        assert (await rooms_client.get(path, headers=other.headers)).status_code == 404
        assert (await rooms_client.post(path, json={"body": "hi"}, headers=other.headers)).status_code == 404
    # A public room is readable by anyone signed in, without its invite code.
    public = await _room(rooms_client, owner, visibility="public")
    r = await rooms_client.get(f"/rooms/{public['id']}", headers=other.headers)
    assert r.status_code == 200 and r.json()["invite_code"] is None and r.json()["my_role"] is None
    # ...but its discussion is for members.
    r = await rooms_client.post(f"/rooms/{public['id']}/posts", json={"body": "hi"}, headers=other.headers)
    assert r.status_code == 403 and r.json()["detail"]["code"] == "ROOM_MEMBERS_ONLY"
    [created] = await _events(community_db, "room.created", room["id"])
    assert created == {"room_id": room["id"], "owner_id": owner.id, "story_id": story, "visibility": "invite"}


async def test_create_refuses_bad_input_and_others_stories(rooms_client, new_user, community_db):
    owner, other = new_user(), new_user()
    theirs = await _story(rooms_client, other)
    before = await community_db.fetchval("SELECT count(*) FROM rooms WHERE owner_id = $1", owner.id)
    for body in (
        {"name": "x", "story_id": theirs},  # another user's story
        {"name": "x", "story_id": str(uuid.uuid4())},
        {"name": "x", "story_id": "not-a-uuid"},
    ):
        r = await rooms_client.post("/rooms", json=body, headers=owner.headers)
        assert r.status_code == 404 and r.json()["detail"]["code"] == "STORY_NOT_FOUND", r.text
    for body in (
        {},
        {"name": ""},
        {"name": "x" * 121},
        {"name": "x", "visibility": "secret"},
        {"name": "x", "unknown": 1},
        {"name": "x", "description": "d" * 2001},
        [],
    ):
        r = await rooms_client.post("/rooms", json=body, headers=owner.headers)
        assert r.status_code == 422, (body, r.text)
    r = await rooms_client.post(
        "/rooms", content=b"{not json", headers={**owner.headers, "content-type": "application/json"}
    )
    assert r.status_code == 400  # malformed JSON: the app's envelope, as on every route
    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        r = await rooms_client.post("/rooms", json={"name": "x"}, headers=headers)
        assert r.status_code == 401
    for path in ("/rooms", f"/rooms/{uuid.uuid4()}", f"/rooms/{uuid.uuid4()}/posts"):
        assert (await rooms_client.get(path, headers={"Authorization": "Bearer x.y.z"})).status_code == 401
    assert await community_db.fetchval("SELECT count(*) FROM rooms WHERE owner_id = $1", owner.id) == before


async def test_join_by_invite_and_public(rooms_client, new_user, community_db):
    owner, fan, stranger = new_user(), new_user(), new_user()
    room = await _room(rooms_client, owner)
    r = await rooms_client.post("/rooms/join", json={"invite_code": room["invite_code"]}, headers=fan.headers)
    assert r.status_code == 200, r.text
    assert r.json()["joined"] is True and r.json()["room"]["my_role"] == "viewer"
    assert r.json()["room"]["member_count"] == 2
    # Joining again changes nothing.
    r = await rooms_client.post("/rooms/join", json={"invite_code": room["invite_code"]}, headers=fan.headers)
    assert r.json()["joined"] is False
    [joined] = await _events(community_db, "room.joined", room["id"])
    assert joined["user_id"] == fan.id and joined["via"] == "invite" and joined["role"] == "viewer"
    # An invite-only room cannot be joined by id; unknown codes and rooms are 404s.
    for body, code in (
        ({"room_id": room["id"]}, "ROOM_NOT_FOUND"),
        ({"room_id": str(uuid.uuid4())}, "ROOM_NOT_FOUND"),
        ({"invite_code": "nosuchcode"}, "INVITE_NOT_FOUND"),
    ):
        r = await rooms_client.post("/rooms/join", json=body, headers=stranger.headers)
        assert r.status_code == 404 and r.json()["detail"]["code"] == code, r.text
    for body in ({}, {"invite_code": "a b"}, {"invite_code": room["invite_code"], "room_id": room["id"]}, {"x": 1}):
        assert (await rooms_client.post("/rooms/join", json=body, headers=stranger.headers)).status_code == 422
    assert (await rooms_client.post("/rooms/join", json={"invite_code": "abcd"})).status_code == 401
    assert await community_db.fetchval("SELECT count(*) FROM room_members WHERE user_id = $1", stranger.id) == 0
    public = await _room(rooms_client, owner, visibility="public")
    r = await rooms_client.post("/rooms/join", json={"room_id": public["id"]}, headers=stranger.headers)
    assert r.status_code == 200 and r.json()["room"]["my_role"] == "viewer"


async def test_roles_owner_only(rooms_client, new_user):
    owner, fan, other_fan, stranger = new_user(), new_user(), new_user(), new_user()
    room = await _room(rooms_client, owner)
    for user in (fan, other_fan):
        await rooms_client.post("/rooms/join", json={"invite_code": room["invite_code"]}, headers=user.headers)
    url = f"/rooms/{room['id']}/members"
    # Not the owner: a member is refused, an outsider does not see the room.
    r = await rooms_client.patch(f"{url}/{other_fan.id}", json={"role": "editor"}, headers=fan.headers)
    assert r.status_code == 403 and r.json()["detail"]["code"] == "ROOM_OWNER_REQUIRED"
    r = await rooms_client.patch(f"{url}/{fan.id}", json={"role": "editor"}, headers=stranger.headers)
    assert r.status_code == 404
    assert (await rooms_client.delete(f"{url}/{other_fan.id}", headers=fan.headers)).status_code == 403
    assert (await rooms_client.delete(f"{url}/{fan.id}", headers=stranger.headers)).status_code == 404
    # The owner: a member's role changes; not a member's, not the owner's own.
    r = await rooms_client.patch(f"{url}/{fan.id}", json={"role": "editor"}, headers=owner.headers)
    assert r.status_code == 200 and r.json()["role"] == "editor"
    r = await rooms_client.patch(f"{url}/{stranger.id}", json={"role": "editor"}, headers=owner.headers)
    assert r.status_code == 404 and r.json()["detail"]["code"] == "MEMBER_NOT_FOUND"
    r = await rooms_client.patch(f"{url}/{owner.id}", json={"role": "viewer"}, headers=owner.headers)
    assert r.status_code == 409 and r.json()["detail"]["code"] == "OWNER_ROLE_FIXED"
    for body in ({"role": "owner"}, {"role": "admin"}, {}, {"role": "editor", "x": 1}):
        assert (await rooms_client.patch(f"{url}/{fan.id}", json=body, headers=owner.headers)).status_code == 422
    assert (await rooms_client.patch(f"{url}/{fan.id}", json={"role": "viewer"})).status_code == 401
    members = (await rooms_client.get(f"/rooms/{room['id']}", headers=owner.headers)).json()["members"]
    assert {m["user_id"]: m["role"] for m in members} == {owner.id: "owner", fan.id: "editor", other_fan.id: "viewer"}
    # Removal by the owner, leaving by oneself; the owner cannot leave.
    assert (await rooms_client.delete(f"{url}/{other_fan.id}", headers=owner.headers)).status_code == 204
    assert (await rooms_client.get(f"/rooms/{room['id']}", headers=other_fan.headers)).status_code == 404
    assert (await rooms_client.delete(f"{url}/{fan.id}", headers=fan.headers)).status_code == 204
    r = await rooms_client.delete(f"{url}/{owner.id}", headers=owner.headers)
    assert r.status_code == 409
    assert (await rooms_client.delete(f"{url}/{fan.id}", headers=owner.headers)).status_code == 404


async def test_posts_newest_first_with_cursors(rooms_client, new_user):
    owner, fan = new_user(), new_user()
    room = await _room(rooms_client, owner)
    await rooms_client.post("/rooms/join", json={"invite_code": room["invite_code"]}, headers=fan.headers)
    url = f"/rooms/{room['id']}/posts"
    for i in range(5):
        who = owner if i % 2 == 0 else fan  # viewers take part in the discussion too
        r = await rooms_client.post(url, json={"body": f"post {i}"}, headers=who.headers)
        assert r.status_code == 201, r.text
    seen, cursor = [], None
    while True:
        r = await rooms_client.get(
            url, params={"limit": 2, **({"cursor": cursor} if cursor else {})}, headers=fan.headers
        )
        assert r.status_code == 200, r.text
        seen += [p["body"] for p in r.json()["posts"]]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"post {i}" for i in reversed(range(5))]
    for body in ({"body": ""}, {"body": "   "}, {"body": "x" * 4001}, {}, {"body": 1}):
        assert (await rooms_client.post(url, json=body, headers=owner.headers)).status_code == 422
    r = await rooms_client.get(url, params={"cursor": "bad"}, headers=owner.headers)
    assert r.status_code == 422 and r.json()["detail"]["code"] == "INVALID_CURSOR"
    assert (await rooms_client.get(f"/rooms/{uuid.uuid4()}/posts", headers=owner.headers)).status_code == 404
    assert (await rooms_client.get("/rooms/not-an-id/posts", headers=owner.headers)).status_code == 404


async def test_lists_public_and_mine(rooms_client, new_user):
    owner, fan = new_user(), new_user()
    mine = [await _room(rooms_client, owner, name=f"mine {i}") for i in range(3)]
    public = await _room(rooms_client, owner, name="open", visibility="public")
    await rooms_client.post("/rooms/join", json={"invite_code": mine[0]["invite_code"]}, headers=fan.headers)
    ids, cursor = [], None
    while True:
        params = {"scope": "mine", "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await rooms_client.get("/rooms", params=params, headers=owner.headers)).json()
        ids += [r["id"] for r in page["rooms"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert ids == [public["id"], *[r["id"] for r in reversed(mine)]]
    page = (await rooms_client.get("/rooms", params={"scope": "mine"}, headers=fan.headers)).json()
    assert [(r["id"], r["my_role"]) for r in page["rooms"]] == [(mine[0]["id"], "viewer")]
    page = (await rooms_client.get("/rooms", params={"scope": "public", "limit": 100}, headers=fan.headers)).json()
    listed = [r["id"] for r in page["rooms"]]
    assert public["id"] in listed and not {r["id"] for r in mine} & set(listed)
    for params in ({"scope": "all"}, {"limit": 0}, {"limit": 101}, {"cursor": "x"}):
        assert (await rooms_client.get("/rooms", params=params, headers=fan.headers)).status_code == 422


# Referral joins: Auth records the referral by its own rules ---------------------------------------


async def _sign_up(auth: httpx.AsyncClient, outbox) -> dict:
    email = f"room-{uuid.uuid4().hex[:10]}@example.com"
    r = await auth.post("/create-account", json={"email": email, "password": PASSWORD})
    assert r.status_code == 201, r.text
    for _ in range(200):
        mails = [json.loads(p.read_text()) for p in outbox.glob("*.json")]
        mail = [m for m in mails if m["to"] == email and m["template"] == "otp_verify"]
        if mail:
            break
        await asyncio.sleep(0.05)
    r = await auth.post("/verify-otp", json={"email": email, "code": mail[-1]["context"]["code"]})
    assert r.status_code == 200, r.text
    token = r.json()["access_token"]
    me = (await auth.get("/users/me", headers={"Authorization": f"Bearer {token}"})).json()
    return {"id": me["id"], "code": me["referral_code"], "headers": {"Authorization": f"Bearer {token}"}}


async def test_referral_join_records_the_referral_in_auth(rooms_client, auth_process, community_db):
    async with httpx.AsyncClient(base_url=auth_process.url, timeout=30) as auth:
        owner, newcomer, late = [await _sign_up(auth, auth_process.email_outbox) for _ in range(3)]
        room = await _room(rooms_client, SimpleNamespace(**owner))
        # Unknown code, one's own code: Auth's refusals, and nothing changes here.
        for user, code, status, error in (
            (newcomer, "ZZZZZZZZ", 404, "INVALID_REFERRAL_CODE"),
            (owner, owner["code"], 200, None),  # already the owner: nothing happens, no referral
            (late, late["code"], 409, "SELF_REFERRAL"),
        ):
            r = await rooms_client.post(
                "/rooms/join", json={"invite_code": room["invite_code"], "referral_code": code}, headers=user["headers"]
            )
            assert r.status_code == status, r.text
            if error:
                assert r.json()["detail"]["code"] == error
        assert (
            await community_db.fetchval("SELECT count(*) FROM room_members WHERE room_id = $1", uuid.UUID(room["id"]))
            == 1
        )

        r = await rooms_client.post(
            "/rooms/join",
            json={"invite_code": room["invite_code"], "referral_code": owner["code"]},
            headers=newcomer["headers"],
        )
        assert r.status_code == 200, r.text
        assert r.json()["joined"] is True
        assert r.json()["referral"] == {"recorded": True, "referrer_id": owner["id"]}
        # Auth holds the referral: the newcomer was referred by the owner, who has one referral.
        mine = (await auth.get("/referrals/me", headers=newcomer["headers"])).json()
        assert mine["referred_by"] == owner["id"] and mine["can_apply"] is False
        assert (await auth.get("/referrals/me", headers=owner["headers"])).json()["referral_count"] == 1
        row = await community_db.fetchrow(
            "SELECT role, referred_by FROM room_members WHERE room_id = $1 AND user_id = $2",
            uuid.UUID(room["id"]),
            newcomer["id"],
        )
        assert (row["role"], row["referred_by"]) == ("viewer", owner["id"])
        [event] = [e for e in await _events(community_db, "room.joined", room["id"]) if e["user_id"] == newcomer["id"]]
        assert event["via"] == "referral" and event["referrer_id"] == owner["id"]
        # A second referral for the same user is Auth's 409, and they stay out of the new room.
        other_room = await _room(rooms_client, SimpleNamespace(**late))
        r = await rooms_client.post(
            "/rooms/join",
            json={"invite_code": other_room["invite_code"], "referral_code": late["code"]},
            headers=newcomer["headers"],
        )
        assert r.status_code == 409 and r.json()["detail"]["code"] == "REFERRAL_ALREADY_APPLIED"
        assert (await rooms_client.get(f"/rooms/{other_room['id']}", headers=newcomer["headers"])).status_code == 404


# Erasure -----------------------------------------------------------------------------------------


async def test_user_deleted_removes_memberships_posts_and_owned_rooms(
    rooms_client, new_user, service_env, community_db, eventually
):
    owner, fan = new_user(), new_user()
    owned = await _room(rooms_client, owner)
    theirs = await _room(rooms_client, fan)
    await rooms_client.post("/rooms/join", json={"invite_code": owned["invite_code"]}, headers=fan.headers)
    await rooms_client.post("/rooms/join", json={"invite_code": theirs["invite_code"]}, headers=owner.headers)
    await rooms_client.post(f"/rooms/{owned['id']}/posts", json={"body": "fan's post"}, headers=fan.headers)
    await rooms_client.post(f"/rooms/{theirs['id']}/posts", json={"body": "owner's post"}, headers=owner.headers)
    await rooms_client.post(f"/rooms/{theirs['id']}/posts", json={"body": "fan stays"}, headers=fan.headers)

    publisher = EventPublisher(service_env["RABBITMQ_URL"], "scenextras.events", name="test-publisher")
    try:
        await publisher.publish(make_event("user.deleted", owner.id, {}))
    finally:
        await publisher.close()

    async def erased():
        return await community_db.fetchval("SELECT count(*) FROM room_members WHERE user_id = $1", owner.id) == 0

    await eventually(erased, timeout=15)
    # Their own room is gone with its members and posts; in the other room only their traces go.
    assert await community_db.fetchval("SELECT count(*) FROM rooms WHERE id = $1", uuid.UUID(owned["id"])) == 0
    assert await community_db.fetchval("SELECT count(*) FROM room_posts WHERE author_id = $1", owner.id) == 0
    assert (await rooms_client.get(f"/rooms/{owned['id']}", headers=fan.headers)).status_code == 404
    posts = (await rooms_client.get(f"/rooms/{theirs['id']}/posts", headers=fan.headers)).json()["posts"]
    assert [p["body"] for p in posts] == ["fan stays"]
    members = (await rooms_client.get(f"/rooms/{theirs['id']}", headers=fan.headers)).json()["members"]
    assert [m["user_id"] for m in members] == [fan.id]
