"""Profile, referrals, deletion and isolation between users."""

from __future__ import annotations

import time
import uuid

from shared.tiers import REFERRAL_BONUS_REFERRED
from shared.tombstones import record_deletion, redis_key
from tests.auth.conftest import PASSWORD, bearer, new_email, sign_up


async def test_profile_validation_changes_nothing_on_bad_input(client, outbox, auth_settings):
    done = await sign_up(client, outbox)
    h = bearer(done["access_token"])
    r = await client.put("/users/me/details", json={"name": "Neo", "preferences": {"theme": "dark"}}, headers=h)
    assert r.status_code == 200
    bad_bodies = [
        {"avatar_url": "javascript:alert(1)"},
        {"phone": "call me"},
        {"country": "Narnia"},
        {"language": "English!"},
        {"onboarding_status": "x" * 80},
        {"preferences": ["not", "an", "object"]},
        {"name": ""},
        {"name": "x" * 101},
        {"email": "new@example.com"},  # not a profile field
        {"premium": 2},
    ]
    for body in bad_bodies:
        r = await client.put("/users/me/details", json=body, headers=h)
        assert r.status_code == 422, (body, r.text)
    r = await client.put("/users/me/details", json={"preferences": {"blob": "x" * 20000}}, headers=h)
    assert r.status_code == 422 and r.json()["detail"]["code"] == "PREFERENCES_TOO_LARGE"
    me = (await client.get("/users/me", headers=h)).json()
    assert me["profile"]["name"] == "Neo" and me["profile"]["preferences"] == {"theme": "dark"} and me["tier"] == 0
    # Partial update: only what is sent changes; null clears.
    r = await client.put("/users/me/details", json={"country": "br", "name": None}, headers=h)
    assert (
        r.status_code == 200
        and r.json()["country"] == "BR"
        and r.json()["name"] is None
        and r.json()["preferences"] == {"theme": "dark"}
    )
    # Without a token, with a bad one, with a service token: refused.
    assert (await client.get("/users/me")).status_code == 401
    assert (await client.get("/users/me", headers=bearer("abc.def.ghi"))).status_code == 401
    from shared.auth import mint_service_token
    from shared.testing.env import TEST_JWT_SECRET

    r = await client.get("/users/me", headers=bearer(mint_service_token(TEST_JWT_SECRET, "chat")))
    assert r.status_code == 403


async def test_no_route_reaches_another_users_data(client, outbox, tokens):
    alice = await sign_up(client, outbox)
    bob = await sign_up(client, outbox)
    await client.put("/users/me/details", json={"name": "Alice"}, headers=bearer(alice["access_token"]))
    r = await client.put("/users/me/details", json={"name": "Bob"}, headers=bearer(bob["access_token"]))
    assert r.json()["name"] == "Bob"
    a = (await client.get("/users/me", headers=bearer(alice["access_token"]))).json()
    assert a["id"] == alice["user"]["id"] and a["profile"]["name"] == "Alice" and a["email"] == alice["email"]
    # A validly signed token for a user id that was never an account (a database restored from
    # before the sign-up) is refused: 401 USER_NOT_FOUND, and nothing is written.
    stranger = tokens.user(str(uuid.uuid4()))
    for r in (
        await client.get("/users/me", headers=bearer(stranger)),
        await client.put("/users/me/details", json={"name": "x"}, headers=bearer(stranger)),
        await client.get("/referrals/me", headers=bearer(stranger)),
        await client.post(
            "/users/me/password", json={"current_password": "x", "new_password": "y" * 9}, headers=bearer(stranger)
        ),
    ):
        assert r.status_code == 401 and r.json()["detail"]["code"] == "USER_NOT_FOUND", r.text
        assert r.headers["www-authenticate"] == "Bearer"
    # Bob deleting himself leaves Alice alone.
    assert (await client.delete("/users/me", headers=bearer(bob["access_token"]))).status_code == 204
    assert (await client.get("/users/me", headers=bearer(alice["access_token"]))).json()["profile"]["name"] == "Alice"
    assert (await client.post("/token/refresh", json={"refresh_token": alice["refresh_token"]})).status_code == 200
    # The OpenAPI surface has no user route with a user id in it: the only one is for services
    # (shared.known_users), and a user's token gets 403 there, even with their own id.
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert [p for p in paths if "{user" in p or "{id" in p] == ["/internal/users/{user_id}"]
    r = await client.get(f"/internal/users/{alice['user']['id']}", headers=bearer(alice["access_token"]))
    assert r.status_code == 403 and r.json()["detail"]["code"] == "SERVICE_TOKEN_REQUIRED"


async def test_deletion_publishes_user_deleted_and_tokens_stop_refreshing(client, outbox, event_spy, db):
    done = await sign_up(client, outbox)
    user_id = done["user"]["id"]
    await client.put("/users/me/details", json={"name": "Soon Gone"}, headers=bearer(done["access_token"]))
    async with event_spy(["user.deleted"]) as spy:
        r = await client.delete("/users/me", headers=bearer(done["access_token"]))
        assert r.status_code == 204
        events = await spy.wait_for("user.deleted", user_id=user_id)
        assert events[0].user_id == user_id
    for table in (
        "users WHERE id",
        "user_profiles WHERE user_id",
        "refresh_tokens WHERE user_id",
        "otp_codes WHERE user_id",
    ):
        assert await db.fetchval(f"SELECT count(*) FROM {table} = $1", user_id) == 0, table
    # Refresh tokens are gone with the account; the still-unexpired access token is refused at
    # once in Auth (401 USER_DELETED), on every route that takes a token.
    r = await client.post("/token/refresh", json={"refresh_token": done["refresh_token"]})
    assert r.status_code == 401 and r.json()["detail"]["code"] == "INVALID_REFRESH_TOKEN"
    for r in (
        await client.get("/users/me", headers=bearer(done["access_token"])),
        await client.delete("/users/me", headers=bearer(done["access_token"])),
        await client.put("/users/me/details", json={"name": "Back"}, headers=bearer(done["access_token"])),
        await client.post("/referrals/apply", json={"code": "ABCDEFGH"}, headers=bearer(done["access_token"])),
        await client.post(
            "/create-account",
            json={"email": new_email(), "password": "long enough pw"},
            headers=bearer(done["access_token"]),
        ),
    ):
        assert r.status_code == 401 and r.json()["detail"]["code"] == "USER_DELETED", r.text
    assert await db.fetchval("SELECT count(*) FROM user_profiles WHERE user_id = $1", user_id) == 0
    # The address is free again.
    again = await sign_up(client, outbox, email=done["email"])
    assert again["user"]["id"] != user_id


async def test_referral_at_sign_up(client, outbox, event_spy, db):
    referrer = await sign_up(client, outbox)
    code = referrer["user"]["referral_code"]
    async with event_spy(["referral.completed", "user.created"]) as spy:
        email = new_email("referred")
        r = await client.post(
            "/create-account", json={"email": email, "password": PASSWORD, "referral_code": code.lower()}
        )
        assert r.status_code == 201
        referred_id = r.json()["user_id"]
        # Nothing is granted before the address is verified.
        assert await db.fetchval("SELECT count(*) FROM referrals WHERE referred_id = $1", referred_id) == 0
        r = await client.post("/verify-otp", json={"email": email, "code": await outbox.code(email)})
        assert r.status_code == 200
        completed = await spy.wait_for("referral.completed", user_id=referred_id)
        assert completed[0].data == {
            "referrer_id": referrer["user"]["id"],
            "referred_id": referred_id,
            "code": code,
            "bonus_credits": 10,
            "bonus_referred": REFERRAL_BONUS_REFERRED,
        }
        created = await spy.wait_for("user.created", user_id=referred_id)
        assert created[0].data["referred_by"] == referrer["user"]["id"]
    mail = await outbox.wait(referrer["email"], "referral_completed")
    assert mail["context"]["referral_count"] == 1
    info = (await client.get("/referrals/me", headers=bearer(referrer["access_token"]))).json()
    assert info["code"] == code and info["referral_count"] == 1 and info["bonus_earned"] == 10
    mine = (await client.get("/referrals/me", headers=bearer(r.json()["access_token"]))).json()
    assert (
        mine["referred_by"] == referrer["user"]["id"]
        and mine["referral_bonus_received"] == REFERRAL_BONUS_REFERRED
        and mine["can_apply"] is False
    )


async def test_referral_rules_self_twice_too_late(client, outbox, event_spy, db):
    referrer = await sign_up(client, outbox)
    other = await sign_up(client, outbox)
    user = await sign_up(client, outbox)
    h = bearer(user["access_token"])
    # Own code.
    r = await client.post("/referrals/apply", json={"code": user["user"]["referral_code"]}, headers=h)
    assert r.status_code == 409 and r.json()["detail"]["code"] == "SELF_REFERRAL"
    # Unknown code.
    r = await client.post("/referrals/apply", json={"code": "ZZZZ2222"}, headers=h)
    assert r.status_code == 404 and r.json()["detail"]["code"] == "INVALID_REFERRAL_CODE"
    # Retroactive, once.
    async with event_spy(["referral.completed"]) as spy:
        r = await client.post("/referrals/apply", json={"code": referrer["user"]["referral_code"]}, headers=h)
        assert r.status_code == 200, r.text
        assert r.json()["referred_by"] == referrer["user"]["id"] and r.json()["can_apply"] is False
        await spy.wait_for("referral.completed", user_id=user["user"]["id"])
    r = await client.post("/referrals/apply", json={"code": other["user"]["referral_code"]}, headers=h)
    assert r.status_code == 409 and r.json()["detail"]["code"] == "REFERRAL_ALREADY_APPLIED"
    assert await db.fetchval("SELECT count(*) FROM referrals WHERE referred_id = $1", user["user"]["id"]) == 1
    # Too late: 31 days after sign-up.
    late = await sign_up(client, outbox)
    await db.execute("UPDATE users SET created_at = now() - interval '31 days' WHERE id = $1", late["user"]["id"])
    r = await client.post(
        "/referrals/apply", json={"code": referrer["user"]["referral_code"]}, headers=bearer(late["access_token"])
    )
    assert r.status_code == 409 and r.json()["detail"]["code"] == "REFERRAL_WINDOW_CLOSED"
    # Guests cannot apply codes (they would farm bonuses).
    guest = (await client.post("/guest")).json()
    r = await client.post(
        "/referrals/apply", json={"code": referrer["user"]["referral_code"]}, headers=bearer(guest["access_token"])
    )
    assert r.status_code == 403
    assert (await client.get("/referrals/me", headers=bearer(referrer["access_token"]))).json()["referral_count"] == 1
    # Deleting the referred user keeps the referrer's count (the bonus was granted).
    await client.delete("/users/me", headers=h)
    assert (await client.get("/referrals/me", headers=bearer(referrer["access_token"]))).json()["referral_count"] == 1


async def test_housekeeping_removes_abandoned_guests_and_dead_tokens(client, outbox, event_spy, db):
    from auth_service.maintenance import cleanup_once

    settings = client.app.state.settings
    old_guest = (await client.post("/guest")).json()
    fresh_guest = (await client.post("/guest")).json()
    member = await sign_up(client, outbox)
    # The old guest was created 40 days ago and has not been back since; the member is just as old.
    for uid in (old_guest["user"]["id"], member["user"]["id"]):
        await db.execute("UPDATE users SET created_at = now() - interval '40 days' WHERE id = $1", uid)
        await db.execute("UPDATE refresh_tokens SET created_at = now() - interval '40 days' WHERE user_id = $1", uid)
    await db.execute(
        "UPDATE refresh_tokens SET expires_at = now() - interval '8 days' WHERE user_id = $1", member["user"]["id"]
    )
    async with event_spy(["user.deleted"]) as spy:
        done = await cleanup_once(db, settings)
        assert done["guests"] >= 1 and done["refresh_tokens"] >= 1
        deleted = await spy.wait_for("user.deleted", user_id=old_guest["user"]["id"])
        assert deleted[0].data["reason"] == "guest_expired"
    assert await db.fetchval("SELECT count(*) FROM users WHERE id = $1", old_guest["user"]["id"]) == 0
    assert await db.fetchval("SELECT count(*) FROM users WHERE id = $1", fresh_guest["user"]["id"]) == 1
    assert await db.fetchval("SELECT count(*) FROM users WHERE id = $1", member["user"]["id"]) == 1
    assert await db.fetchval("SELECT count(*) FROM refresh_tokens WHERE user_id = $1", member["user"]["id"]) == 0


async def test_a_deletion_by_another_auth_process_counts_before_its_event(client, outbox, db):
    """Another Auth process deleted the account and its event has not reached this one: this
    process's tombstones do not know the user yet, but its users table and the Redis set do
    (USER_DELETED); an account that is simply not there is USER_NOT_FOUND."""
    state = client.app.state
    for recorded, code in ((True, "USER_DELETED"), (False, "USER_NOT_FOUND")):
        done = await sign_up(client, outbox)
        user_id = done["user"]["id"]
        # What the other process did: the row gone (no event here), the deletion in Redis.
        await db.execute("DELETE FROM users WHERE id = $1", uuid.UUID(user_id))
        if recorded:
            await record_deletion(state.redis, redis_key(state.keys), user_id, time.time() + 3600)
        assert user_id not in state.tombstones
        r = await client.get("/users/me", headers=bearer(done["access_token"]))
        assert r.status_code == 401 and r.json()["detail"]["code"] == code, r.text
