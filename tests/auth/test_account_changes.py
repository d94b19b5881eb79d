"""A signed-in user changing their email (code to the new address, old address told) and their
password (current one required, other sessions signed out, this one kept)."""

from __future__ import annotations

import uuid

from tests.auth.conftest import PASSWORD, bearer, new_email, sign_up


async def _request_change(client, h, new: str):
    return await client.post("/users/me/email", json={"new_email": new}, headers=h)


async def test_email_change_happy_path(client, outbox, event_spy, db):
    fan = await sign_up(client, outbox)
    h = bearer(fan["access_token"])
    new = new_email("moved")
    r = await _request_change(client, h, new.upper())  # addresses are compared lower-cased
    assert r.status_code == 202 and r.json() == {"status": "pending_verification", "new_email": new}, r.text
    code = await outbox.code(new, "email_change")
    # Nothing changed before the code comes back.
    assert (await client.get("/users/me", headers=h)).json()["email"] == fan["email"]
    async with event_spy(["user.updated"]) as spy:
        r = await client.post("/users/me/email/verify", json={"code": code}, headers=h)
        assert r.status_code == 200, r.text
        assert r.json()["email"] == new and r.json()["id"] == fan["user"]["id"]
        [updated] = await spy.wait_for("user.updated", user_id=fan["user"]["id"])
        assert updated.data == {"changed": ["email"], "email": new}
    told = await outbox.wait(fan["email"], "email_changed")
    assert told["context"] == {"new_email": new}
    # The new address signs in, the old one no longer does; the next refresh carries the new email.
    assert (await client.post("/login", json={"email": new, "password": PASSWORD})).status_code == 200
    r = await client.post("/login", json={"email": fan["email"], "password": PASSWORD})
    assert r.status_code == 401 and r.json()["detail"]["code"] == "INVALID_CREDENTIALS"
    pair = (await client.post("/token/refresh", json={"refresh_token": fan["refresh_token"]})).json()
    assert (await client.get("/users/me", headers=bearer(pair["access_token"]))).json()["email"] == new
    # The code is spent.
    r = await client.post("/users/me/email/verify", json={"code": code}, headers=h)
    assert r.status_code == 400 and r.json()["detail"]["code"] == "NO_PENDING_EMAIL_CHANGE"
    # The old address is free for a new account.
    assert (await sign_up(client, outbox, email=fan["email"]))["user"]["id"] != fan["user"]["id"]


async def test_email_change_conflicts(client, outbox, db):
    fan = await sign_up(client, outbox)
    other = await sign_up(client, outbox)
    h = bearer(fan["access_token"])
    # Another account's confirmed address: 409, no code sent.
    r = await _request_change(client, h, other["email"])
    assert r.status_code == 409 and r.json()["detail"]["code"] == "EMAIL_TAKEN"
    assert not outbox.messages(other["email"], "email_change")
    # Its own address: 409.
    r = await _request_change(client, h, fan["email"])
    assert r.status_code == 409 and r.json()["detail"]["code"] == "EMAIL_UNCHANGED"
    # Someone verifies the address between the code and its confirmation: 409, nothing changes.
    contested = new_email("contested")
    assert (await _request_change(client, h, contested)).status_code == 202
    code = await outbox.code(contested, "email_change")
    rival = await sign_up(client, outbox, email=contested)
    r = await client.post("/users/me/email/verify", json={"code": code}, headers=h)
    assert r.status_code == 409 and r.json()["detail"]["code"] == "EMAIL_TAKEN"
    assert await db.fetchval("SELECT email FROM users WHERE id = $1", uuid.UUID(fan["user"]["id"])) == fan["email"]
    assert await db.fetchval("SELECT email FROM users WHERE id = $1", uuid.UUID(rival["user"]["id"])) == contested
    # A pending (never verified) sign-up for an address does not block it: proving it wins.
    pending = new_email("pending")
    r = await client.post("/create-account", json={"email": pending, "password": PASSWORD})
    assert r.status_code == 201
    assert (await _request_change(client, h, pending)).status_code == 202
    code = await outbox.code(pending, "email_change")
    r = await client.post("/users/me/email/verify", json={"code": code}, headers=h)
    assert r.status_code == 200 and r.json()["email"] == pending
    assert await db.fetchval("SELECT count(*) FROM users WHERE email = $1", pending) == 1
    # A guest has no address to change: it signs up instead.
    guest = (await client.post("/guest")).json()
    r = await _request_change(client, bearer(guest["access_token"]), new_email())
    assert r.status_code == 403 and r.json()["detail"]["code"] == "ACCOUNT_REQUIRED"


async def test_email_change_wrong_and_expired_codes(client, outbox, db):
    fan = await sign_up(client, outbox)
    h = bearer(fan["access_token"])
    user_id = uuid.UUID(fan["user"]["id"])
    # No change asked for yet.
    r = await client.post("/users/me/email/verify", json={"code": "123456"}, headers=h)
    assert r.status_code == 400 and r.json()["detail"]["code"] == "NO_PENDING_EMAIL_CHANGE"
    new = new_email("moving")
    assert (await _request_change(client, h, new)).status_code == 202
    code = await outbox.code(new, "email_change")
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    r = await client.post("/users/me/email/verify", json={"code": wrong}, headers=h)
    assert r.status_code == 400 and r.json()["detail"]["code"] == "INVALID_CODE"
    assert r.json()["detail"]["attempts_remaining"] == 4
    # Malformed codes and bodies are 422 and count nothing.
    for body in ({"code": "12345"}, {"code": "abcdef"}, {}, {"code": "123456", "email": new}):
        assert (await client.post("/users/me/email/verify", json=body, headers=h)).status_code == 422
    for body in ({"new_email": "not an address"}, {}, {"new_email": "a@b.co", "x": 1}, {"new_email": "a" * 300}):
        assert (await client.post("/users/me/email", json=body, headers=h)).status_code == 422
    assert (
        await db.fetchval("SELECT attempts FROM otp_codes WHERE user_id = $1 AND purpose = 'email_change'", user_id)
        == 1
    )
    # Expired: the right code is refused and nothing changes.
    await db.execute(
        "UPDATE otp_codes SET expires_at = now() - interval '1 second' WHERE user_id = $1 AND purpose = 'email_change'",
        user_id,
    )
    r = await client.post("/users/me/email/verify", json={"code": code}, headers=h)
    assert r.status_code == 400 and r.json()["detail"]["code"] == "CODE_EXPIRED"
    assert await db.fetchval("SELECT email FROM users WHERE id = $1", user_id) == fan["email"]
    # Locked after too many wrong codes, even for the right one; a new request starts over.
    assert (await _request_change(client, h, new)).status_code == 202
    code = await outbox.code(new, "email_change", count=2)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for _ in range(5):
        r = await client.post("/users/me/email/verify", json={"code": wrong}, headers=h)
    assert r.status_code == 429 and r.json()["detail"]["code"] == "CODE_LOCKED"
    r = await client.post("/users/me/email/verify", json={"code": code}, headers=h)
    assert r.status_code == 429
    assert await db.fetchval("SELECT email FROM users WHERE id = $1", user_id) == fan["email"]
    # No token, a bad token: 401.
    assert (await client.post("/users/me/email", json={"new_email": new})).status_code == 401
    r = await client.post("/users/me/email/verify", json={"code": code}, headers=bearer("x.y.z"))
    assert r.status_code == 401


async def test_password_change_revokes_other_sessions(client, outbox, event_spy, db):
    fan = await sign_up(client, outbox)  # session A
    h = bearer(fan["access_token"])
    other = (await client.post("/login", json={"email": fan["email"], "password": PASSWORD})).json()  # session B
    third = (await client.post("/login", json={"email": fan["email"], "password": PASSWORD})).json()  # session C
    new_password = "a much longer new passphrase"
    # Wrong current password: 403, nothing changes, no session ends.
    r = await client.post(
        "/users/me/password", json={"current_password": "wrong one!", "new_password": new_password}, headers=h
    )
    assert r.status_code == 403 and r.json()["detail"]["code"] == "WRONG_PASSWORD"
    for body in (
        {"current_password": PASSWORD, "new_password": "short"},
        {"current_password": PASSWORD},
        {"current_password": "", "new_password": new_password},
        {"current_password": PASSWORD, "new_password": "x" * 257},
    ):
        assert (await client.post("/users/me/password", json=body, headers=h)).status_code == 422, body
    r = await client.post("/token/refresh", json={"refresh_token": third["refresh_token"]})
    assert r.status_code == 200
    third = r.json()
    async with event_spy(["user.updated"]) as spy:
        r = await client.post(
            "/users/me/password", json={"current_password": PASSWORD, "new_password": new_password}, headers=h
        )
        assert r.status_code == 204, r.text
        [updated] = await spy.wait_for("user.updated", user_id=fan["user"]["id"])
        assert updated.data == {"changed": ["password"]}
    # Other sessions: their refresh tokens are dead.
    for pair in (other, third):
        r = await client.post("/token/refresh", json={"refresh_token": pair["refresh_token"]})
        assert r.status_code == 401, r.text
    # This session stays: its refresh token still works.
    r = await client.post("/token/refresh", json={"refresh_token": fan["refresh_token"]})
    assert r.status_code == 200
    # The new password signs in, the old one does not.
    assert (await client.post("/login", json={"email": fan["email"], "password": new_password})).status_code == 200
    r = await client.post("/login", json={"email": fan["email"], "password": PASSWORD})
    assert r.status_code == 401
    # An account without a password (a guest) is told how to set one.
    guest = (await client.post("/guest")).json()
    r = await client.post(
        "/users/me/password",
        json={"current_password": "anything", "new_password": new_password},
        headers=bearer(guest["access_token"]),
    )
    assert r.status_code == 409 and r.json()["detail"]["code"] == "PASSWORD_NOT_SET"
    assert (
        await client.post("/users/me/password", json={"current_password": "a", "new_password": "b" * 9})
    ).status_code == 401
