"""Sign-up with an emailed code, login, guests, password reset: the plan's onboarding flow."""

from __future__ import annotations

import asyncio

from jose import jwt

from shared.testing.env import TEST_JWT_SECRET
from shared.testing.poll import holding
from tests.auth.conftest import PASSWORD, bearer, new_email, sign_up


def claims(token: str) -> dict:
    return jwt.decode(token, TEST_JWT_SECRET, algorithms=["HS256"], audience="authenticated")


async def test_onboarding_flow(client, outbox, event_spy, db):
    """create-account -> OTP from the email -> verify -> details -> user.created on the bus."""
    email = new_email("onboard")
    async with event_spy(["user.*"]) as spy:
        r = await client.post("/create-account", json={"email": email.upper(), "password": PASSWORD})
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["status"] == "pending_verification"
        user_id = body["user_id"]

        # Not verified yet: the right password is answered 403 EMAIL_NOT_VERIFIED, not a token.
        r = await client.post("/login", json={"email": email, "password": PASSWORD})
        assert r.status_code == 403 and r.json()["detail"]["code"] == "EMAIL_NOT_VERIFIED"

        message = await outbox.wait(email, "otp_verify")
        code = message["context"]["code"]
        assert len(code) == 6 and code.isdigit() and code in message["text"]
        # The code is stored hashed, never in the clear.
        stored = await db.fetchval("SELECT code_hash FROM otp_codes WHERE user_id = $1", user_id)
        assert stored and code not in stored
        password_hash = await db.fetchval("SELECT password_hash FROM users WHERE id = $1", user_id)
        assert password_hash.startswith("$argon2id$") and PASSWORD not in password_hash

        r = await client.post("/verify-otp", json={"email": email, "code": code})
        assert r.status_code == 200, r.text
        pair = r.json()
        assert pair["token_type"] == "bearer" and pair["expires_in"] == 3600
        assert pair["user"]["id"] == user_id and pair["user"]["confirmed"] is True and pair["user"]["is_guest"] is False
        c = claims(pair["access_token"])
        assert c["sub"] == user_id and c["email"] == email and c["role"] == "authenticated"
        assert c["app_metadata"]["tier"] == 0 and c["is_anonymous"] is False and c["exp"] - c["iat"] == 3600

        # The code is spent.
        r = await client.post("/verify-otp", json={"email": email, "code": code})
        assert r.status_code == 400

        details = {
            "name": "Ada Lovelace",
            "avatar_url": "https://cdn.example.com/a.png",
            "phone": "+44 20 7946 0958",
            "country": "gb",
            "language": "en-GB",
            "preferences": {"genres": ["sci-fi", "anime"], "notifications": True},
            "onboarding_status": "completed",
        }
        r = await client.put("/users/me/details", json=details, headers=bearer(pair["access_token"]))
        assert r.status_code == 200, r.text
        profile = r.json()
        assert (
            profile["phone"] == "+442079460958"
            and profile["country"] == "GB"
            and profile["preferences"]["genres"] == ["sci-fi", "anime"]
        )

        r = await client.get("/users/me", headers=bearer(pair["access_token"]))
        assert r.status_code == 200
        me = r.json()
        assert me["email"] == email and me["tier"] == 0 and me["tier_name"] == "free"
        assert me["profile"]["name"] == "Ada Lovelace" and me["profile"]["onboarding_status"] == "completed"
        assert len(me["referral_code"]) == 8 and me["has_password"] is True

        created = await spy.wait_for("user.created", user_id=user_id)
        assert created[0].data == {
            "email": email,
            "referral_code": me["referral_code"],
            "referred_by": None,
            "is_guest": False,
        }
        updated = await spy.wait_for("user.updated", user_id=user_id)
        assert "onboarding_status" in updated[-1].data["changed"]
        assert "phone" not in updated[-1].data["profile"]  # personal data stays in Auth

        r = await client.post("/login", json={"email": email, "password": PASSWORD})
        assert r.status_code == 200 and r.json()["user"]["id"] == user_id
        # The legacy monolith prefix answers the same routes.
        r = await client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
        assert r.status_code == 200


async def test_wrong_and_expired_codes(client, outbox, db):
    email = new_email("codes")
    r = await client.post("/create-account", json={"email": email, "password": PASSWORD})
    user_id = r.json()["user_id"]
    code = await outbox.code(email)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    r = await client.post("/verify-otp", json={"email": email, "code": wrong})
    assert r.status_code == 400
    assert r.json()["detail"] == {"code": "INVALID_CODE", "message": "That code is not right.", "attempts_remaining": 4}
    for bad in ("12345", "abcdef", "1234567"):
        r = await client.post("/verify-otp", json={"email": email, "code": bad})
        assert r.status_code == 422 and r.json()["detail"]["code"] == "VALIDATION_ERROR"
    # Ten minutes later the right code is refused as expired, and nothing changes.
    await db.execute("UPDATE otp_codes SET expires_at = now() - interval '1 second' WHERE user_id = $1", user_id)
    r = await client.post("/verify-otp", json={"email": email, "code": code})
    assert r.status_code == 400 and r.json()["detail"]["code"] == "CODE_EXPIRED"
    assert await db.fetchval("SELECT confirmed FROM users WHERE id = $1", user_id) is False
    # A new code works.
    assert (await client.post("/resend-otp", json={"email": email})).status_code == 202
    new_code = await outbox.code(email, count=2)
    r = await client.post("/verify-otp", json={"email": email, "code": new_code})
    assert r.status_code == 200
    # Unknown address: the same 400 as a wrong code.
    r = await client.post("/verify-otp", json={"email": new_email("nobody"), "code": "123456"})
    assert r.status_code == 400 and r.json()["detail"]["code"] == "INVALID_CODE"


async def test_lockout_after_five_wrong_codes(client, outbox, db):
    email = new_email("lock")
    user_id = (await client.post("/create-account", json={"email": email, "password": PASSWORD})).json()["user_id"]
    code = await outbox.code(email)
    wrong = f"{(int(code) + 7) % 1_000_000:06d}"
    for remaining in (4, 3, 2, 1):
        r = await client.post("/verify-otp", json={"email": email, "code": wrong})
        assert r.status_code == 400 and r.json()["detail"]["attempts_remaining"] == remaining
    r = await client.post("/verify-otp", json={"email": email, "code": wrong})
    assert r.status_code == 429 and r.json()["detail"]["code"] == "CODE_LOCKED"
    # Locked: even the right code is refused now.
    r = await client.post("/verify-otp", json={"email": email, "code": code})
    assert r.status_code == 429 and r.json()["detail"]["code"] == "CODE_LOCKED"
    assert await db.fetchval("SELECT confirmed FROM users WHERE id = $1", user_id) is False
    # Guesses at once cannot sneak past the counter: each locks the account's row, then the code's
    # (either lock alone serialises them). The account's row is held until all six guesses wait on
    # it, so every run races them: read unlocked, all six would be checked against attempts = 0
    # and counted, a sixth try past the limit of five.
    await client.post("/resend-otp", json={"email": email})
    code = await outbox.code(email, count=2)
    guesses = [f"{(int(code) + i) % 1_000_000:06d}" for i in range(1, 7)]
    async with holding(db, "SELECT 1 FROM users WHERE id = $1 FOR UPDATE", user_id) as release_when_waiting:
        tries = [asyncio.ensure_future(client.post("/verify-otp", json={"email": email, "code": g})) for g in guesses]
        await release_when_waiting("users", len(guesses))
        answers = await asyncio.gather(*tries)
    assert sorted(a.status_code for a in answers) == [400] * 4 + [429] * 2
    assert await db.fetchval("SELECT attempts FROM otp_codes WHERE user_id = $1", user_id) == 5


async def test_create_account_conflicts_and_bad_input(client, outbox, db):
    done = await sign_up(client, outbox)
    r = await client.post("/create-account", json={"email": done["email"], "password": "another password"})
    assert r.status_code == 409 and r.json()["detail"]["code"] == "EMAIL_TAKEN"

    users_before = await db.fetchval("SELECT count(*) FROM users")
    for body in (
        {"email": "not-an-email", "password": PASSWORD},
        {"email": new_email(), "password": "short"},
        {"email": new_email(), "password": "x" * 300},
        {"email": new_email()},
        {"email": new_email(), "password": PASSWORD, "is_admin": True},
        {"email": new_email(), "password": PASSWORD, "referral_code": "!!"},
    ):
        r = await client.post("/create-account", json=body)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["detail"]["code"] == "VALIDATION_ERROR"
    r = await client.post("/create-account", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["detail"]["code"] == "INVALID_JSON"
    r = await client.post(
        "/create-account", json={"email": new_email(), "password": PASSWORD, "referral_code": "NOPE2345"}
    )
    assert r.status_code == 404 and r.json()["detail"]["code"] == "INVALID_REFERRAL_CODE"
    assert await db.fetchval("SELECT count(*) FROM users") == users_before

    # Signing up again before verifying keeps the same account; the latest password counts.
    email = new_email("again")
    first = (await client.post("/create-account", json={"email": email, "password": "first password"})).json()
    second = (await client.post("/create-account", json={"email": email, "password": "second password"})).json()
    assert first["user_id"] == second["user_id"]
    code = await outbox.code(email, count=2)
    assert (await client.post("/verify-otp", json={"email": email, "code": code})).status_code == 200
    assert (await client.post("/login", json={"email": email, "password": "first password"})).status_code == 401
    assert (await client.post("/login", json={"email": email, "password": "second password"})).status_code == 200


async def test_login_refusals_do_not_reveal_accounts(client, outbox):
    done = await sign_up(client, outbox)
    wrong = await client.post("/login", json={"email": done["email"], "password": "wrong password"})
    unknown = await client.post("/login", json={"email": new_email("ghost"), "password": "wrong password"})
    assert wrong.status_code == unknown.status_code == 401
    assert (
        wrong.json()
        == unknown.json()
        == {"detail": {"code": "INVALID_CREDENTIALS", "message": "Wrong email or password."}}
    )


async def test_resend_and_forgot_answer_the_same_for_unknown_addresses(client, outbox, eventually):
    done = await sign_up(client, outbox)
    pending = new_email("pending")
    await client.post("/create-account", json={"email": pending, "password": PASSWORD})
    ghost = new_email("ghost")
    answers = [
        await client.post("/resend-otp", json={"email": pending}),
        await client.post("/resend-otp", json={"email": ghost}),
        await client.post("/resend-otp", json={"email": done["email"]}),
    ]
    assert {a.status_code for a in answers} == {202}
    assert answers[0].json() == answers[1].json() == answers[2].json()
    forgot = [await client.post("/password/forgot", json={"email": e}) for e in (done["email"], ghost)]
    assert {a.status_code for a in forgot} == {202} and forgot[0].json() == forgot[1].json()
    await outbox.wait(pending, "otp_verify", count=2)
    await outbox.wait(done["email"], "password_reset")
    # Every email these requests scheduled has been sent (the service's set of background sends is
    # empty): whatever the ghost was going to get, it would have by now.
    await eventually(lambda: not client.app.state.background_tasks)
    assert outbox.messages(ghost) == []
    assert (
        outbox.messages(done["email"], "otp_verify")[-1:] == outbox.messages(done["email"], "otp_verify")[:1]
    )  # no second code


async def test_password_reset(client, outbox):
    done = await sign_up(client, outbox)
    email = done["email"]
    assert (await client.post("/password/forgot", json={"email": email})).status_code == 202
    code = await outbox.code(email, "password_reset")
    r = await client.post("/password/reset", json={"email": email, "code": code, "new_password": "tiny"})
    assert r.status_code == 422
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    r = await client.post(
        "/password/reset", json={"email": email, "code": wrong, "new_password": "a brand new password"}
    )
    assert r.status_code == 400 and r.json()["detail"]["attempts_remaining"] == 4
    r = await client.post(
        "/password/reset", json={"email": email, "code": code, "new_password": "a brand new password"}
    )
    assert r.status_code == 204
    assert (await client.post("/login", json={"email": email, "password": PASSWORD})).status_code == 401
    assert (await client.post("/login", json={"email": email, "password": "a brand new password"})).status_code == 200
    # Every session from before the reset is signed out.
    r = await client.post("/token/refresh", json={"refresh_token": done["refresh_token"]})
    assert r.status_code == 401
    # The code is spent.
    r = await client.post(
        "/password/reset", json={"email": email, "code": code, "new_password": "yet another password"}
    )
    assert r.status_code == 400


async def test_guest_becomes_an_account_with_the_same_id(client, outbox, event_spy, db):
    async with event_spy(["user.*"]) as spy:
        r = await client.post("/guest")
        assert r.status_code == 201, r.text
        guest = r.json()
        guest_id = guest["user"]["id"]
        assert guest["user"]["is_guest"] is True and guest["user"]["email"] is None
        c = claims(guest["access_token"])
        assert c["is_anonymous"] is True and c["sub"] == guest_id
        created = await spy.wait_for("user.created", user_id=guest_id)
        assert created[0].data["is_guest"] is True and created[0].data["email"] is None

        # The guest fills in some details, then creates an account with its token.
        await client.put("/users/me/details", json={"name": "Guest Fan"}, headers=bearer(guest["access_token"]))
        email = new_email("guest")
        r = await client.post(
            "/create-account", json={"email": email, "password": PASSWORD}, headers=bearer(guest["access_token"])
        )
        assert r.status_code == 201 and r.json()["user_id"] == guest_id
        code = await outbox.code(email)
        r = await client.post("/verify-otp", json={"email": email, "code": code})
        assert r.status_code == 200
        user = r.json()["user"]
        assert user["id"] == guest_id and user["is_guest"] is False and user["email"] == email
        assert user["profile"]["name"] == "Guest Fan"
        assert claims(r.json()["access_token"])["is_anonymous"] is False
        await spy.wait_for("user.updated", user_id=guest_id, is_guest=False)
        assert len(spy.of_type("user.created", user_id=guest_id)) == 1
    assert await db.fetchval("SELECT temporary_account FROM users WHERE id = $1", guest_id) is False
    # A guest cannot log in with a password (it has none) and cannot be found by email.
    assert (await client.post("/login", json={"email": email, "password": PASSWORD})).status_code == 200


async def test_an_unverified_address_belongs_to_whoever_proves_it(client, outbox, db):
    """A guest claims an address it does not own; the owner signs up: the owner gets the account,
    the guest stays a guest with its data, and the guest's stale code no longer works."""
    guest = (await client.post("/guest")).json()
    gh = bearer(guest["access_token"])
    await client.put("/users/me/details", json={"name": "Squatter"}, headers=gh)
    email = new_email("owner")
    assert (
        await client.post("/create-account", json={"email": email, "password": "guest password"}, headers=gh)
    ).status_code == 201
    guest_code = await outbox.code(email)
    r = await client.post("/create-account", json={"email": email, "password": "owner password"})
    assert r.status_code == 201 and r.json()["user_id"] != guest["user"]["id"]
    owner_code = await outbox.code(email, count=2)
    if guest_code != owner_code:
        r = await client.post("/verify-otp", json={"email": email, "code": guest_code})
        assert r.status_code == 400
    r = await client.post("/verify-otp", json={"email": email, "code": owner_code})
    assert r.status_code == 200 and r.json()["user"]["profile"]["name"] is None
    me = (await client.get("/users/me", headers=gh)).json()
    assert me["is_guest"] is True and me["email"] is None and me["profile"]["name"] == "Squatter"


async def test_production_refuses_the_console_email_backend(service_env):
    import pytest

    from auth_service.settings import Settings
    from shared.testing.env import patched_environ

    with patched_environ({**service_env, "ENVIRONMENT": "production", "EMAIL_BACKEND": "console"}):
        with pytest.raises(Exception) as err:
            Settings()
    assert "EMAIL_BACKEND" in str(err.value)
