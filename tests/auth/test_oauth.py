"""Google and Apple ID tokens signed by the sandbox's keys and checked against its JWKS;
Facebook through the sandbox Graph API."""

from __future__ import annotations

import uuid

import httpx

from sandbox.oauth import mint_id_token, register_facebook_token
from tests.auth.conftest import APPLE_CLIENT_ID, GOOGLE_CLIENT_ID, bearer, new_email, sign_up
from tests.auth.test_signup import claims


def google_token(email: str | None, sub: str | None = None, **kwargs) -> str:
    kwargs.setdefault("audience", GOOGLE_CLIENT_ID)
    return mint_id_token("google", sub or f"g-{uuid.uuid4().hex}", email, **kwargs)


async def test_google_sign_in_creates_then_finds_the_account(client, event_spy):
    email = new_email("google")
    sub = f"g-{uuid.uuid4().hex}"
    async with event_spy(["user.created"]) as spy:
        r = await client.post("/oauth/google", json={"id_token": google_token(email, sub, name="Grace Hopper")})
        assert r.status_code == 200, r.text
        first = r.json()
        user = first["user"]
        assert (
            user["email"] == email
            and user["confirmed"]
            and user["providers"] == ["google"]
            and user["has_password"] is False
        )
        assert user["profile"]["name"] == "Grace Hopper"
        assert claims(first["access_token"])["app_metadata"]["provider"] == "google"
        await spy.wait_for("user.created", user_id=user["id"])
    r = await client.post("/oauth/google", json={"id_token": google_token(email, sub)})
    assert r.status_code == 200 and r.json()["user"]["id"] == user["id"]
    # The second client id is accepted too.
    r = await client.post(
        "/oauth/google",
        json={"id_token": google_token(email, sub, audience="other-web-client.apps.googleusercontent.com")},
    )
    assert r.status_code == 200 and r.json()["user"]["id"] == user["id"]


async def test_google_tokens_that_must_be_refused(client, db):
    users_before = await db.fetchval("SELECT count(*) FROM users")
    email = new_email("refused")
    cases = {
        "wrong audience": google_token(email, audience="someone-elses-app.apps.googleusercontent.com"),
        "expired": google_token(email, expires_in=-120),
        "wrong issuer": google_token(email, issuer="https://evil.example.com"),
        "apple token at google": mint_id_token("apple", "a-1", email, audience=GOOGLE_CLIENT_ID),
    }
    for name, token in cases.items():
        r = await client.post("/oauth/google", json={"id_token": token})
        assert r.status_code == 401, (name, r.text)
        assert r.json()["detail"]["code"] == "INVALID_OAUTH_TOKEN"
    # A forged signature: the payload of a valid token with another token's signature.
    good = google_token(email).split(".")
    other = google_token(new_email()).split(".")
    r = await client.post("/oauth/google", json={"id_token": f"{good[0]}.{good[1]}.{other[2]}"})
    assert r.status_code == 401
    r = await client.post("/oauth/google", json={"id_token": "not.a.jwt-at-all"})
    assert r.status_code == 401
    r = await client.post("/oauth/google", json={})
    assert r.status_code == 422
    assert await db.fetchval("SELECT count(*) FROM users") == users_before


async def test_apple_links_to_the_existing_account_by_verified_email(client, outbox):
    done = await sign_up(client, outbox)
    token = mint_id_token(
        "apple", f"a-{uuid.uuid4().hex}", done["email"], audience=APPLE_CLIENT_ID
    )  # email_verified "true" (a string)
    r = await client.post("/oauth/apple", json={"id_token": token})
    assert r.status_code == 200, r.text
    assert r.json()["user"]["id"] == done["user"]["id"] and r.json()["user"]["providers"] == ["apple"]
    # An unverified email never links: a new account without that email instead.
    r = await client.post(
        "/oauth/apple",
        json={
            "id_token": mint_id_token(
                "apple", f"a-{uuid.uuid4().hex}", done["email"], audience=APPLE_CLIENT_ID, email_verified=False
            )
        },
    )
    assert r.status_code == 200 and r.json()["user"]["id"] != done["user"]["id"] and r.json()["user"]["email"] is None
    r = await client.post(
        "/oauth/apple", json={"id_token": mint_id_token("apple", "a-x", done["email"], audience="com.other.app")}
    )
    assert r.status_code == 401
    r = await client.post(
        "/oauth/apple",
        json={"id_token": mint_id_token("apple", "a-x", done["email"], audience=APPLE_CLIENT_ID, expires_in=-60)},
    )
    assert r.status_code == 401


async def test_oauth_confirms_a_pending_sign_up_and_drops_its_password(client, outbox, db):
    """Someone signed up with this address but never verified it; the owner signs in with Google.
    Whoever chose that password never proved the address, so it must not open the account."""
    email = new_email("prehijack")
    r = await client.post("/create-account", json={"email": email, "password": "attacker password"})
    pending_id = r.json()["user_id"]
    r = await client.post("/oauth/google", json={"id_token": google_token(email)})
    assert r.status_code == 200 and r.json()["user"]["id"] == pending_id and r.json()["user"]["confirmed"]
    assert (await client.post("/login", json={"email": email, "password": "attacker password"})).status_code == 401
    assert await db.fetchval("SELECT password_hash FROM users WHERE id = $1", pending_id) is None


async def test_guest_signs_in_with_google_and_keeps_its_id(client):
    guest = (await client.post("/guest")).json()
    email = new_email("guestg")
    r = await client.post(
        "/oauth/google", json={"id_token": google_token(email)}, headers=bearer(guest["access_token"])
    )
    assert r.status_code == 200
    assert (
        r.json()["user"]["id"] == guest["user"]["id"]
        and r.json()["user"]["is_guest"] is False
        and r.json()["user"]["email"] == email
    )


async def test_facebook_sign_in(client, providers):
    base, _ = providers
    email = new_email("fb")
    fb_user = str(uuid.uuid4().int)[:15]
    token = f"EAAB{uuid.uuid4().hex}"
    register_facebook_token(token, fb_user, email=email, name="Fb Fan")
    r = await client.post("/oauth/facebook", json={"access_token": token})
    assert r.status_code == 200, r.text
    assert r.json()["user"]["email"] == email and r.json()["user"]["providers"] == ["facebook"]
    # Our app secret went as the app token, and /me carried an appsecret_proof.
    async with httpx.AsyncClient(base_url=base) as sb:
        recorded = (await sb.get("/_sandbox/requests", params={"provider": "facebook"})).json()
    text = str(recorded)
    assert "appsecret_proof" in text
    # A token for another app, an invalidated token, an expired one, an unknown one.
    for kwargs in ({"app_id": "999"}, {"valid": False}, {"expires_in": -10}):
        bad = f"EAAB{uuid.uuid4().hex}"
        register_facebook_token(bad, fb_user, email=email, **kwargs)
        r = await client.post("/oauth/facebook", json={"access_token": bad})
        assert r.status_code == 401, (kwargs, r.text)
    r = await client.post("/oauth/facebook", json={"access_token": "EAAB-unknown-token"})
    assert r.status_code == 401


async def test_provider_outage_is_a_clear_503(auth_client_factory, providers):
    base, _ = providers
    # A JWKS URL where nothing answers: no keys can be fetched.
    async with auth_client_factory(google_jwks_url="http://127.0.0.1:9/jwks") as c:
        r = await c.post("/oauth/google", json={"id_token": google_token(new_email())})
        assert r.status_code == 503 and r.json()["detail"]["code"] == "OAUTH_PROVIDER_UNAVAILABLE"
    async with httpx.AsyncClient(base_url=base) as sb:
        await sb.post("/_sandbox/faults", json={"provider": "facebook", "status": 500, "count": 1})
    token = f"EAAB{uuid.uuid4().hex}"
    register_facebook_token(token, "12345", email=new_email())
    async with auth_client_factory() as c:
        r = await c.post("/oauth/facebook", json={"access_token": token})
        assert r.status_code == 503 and r.headers["retry-after"]
        r = await c.post("/oauth/facebook", json={"access_token": token})
        assert r.status_code == 200
    # Not configured: Google sign-in without client ids is refused clearly.
    async with auth_client_factory(google_client_ids="") as c:
        r = await c.post("/oauth/google", json={"id_token": google_token(new_email())})
        assert r.status_code == 503
