"""Token validation: what shared/ accepts and what it answers 401 to."""

import base64
import json
import time
import uuid

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi import FastAPI
from jose import jwk as jose_jwk

from shared.auth import mint_access_token, mint_service_token
from shared.testing.env import TEST_JWT_SECRET
from shared.testing.servers import ThreadedServer
from tests.shared.apps import build_probe_app

pytestmark = pytest.mark.asyncio(loop_scope="session")


def supabase_claims(**overrides):
    now = int(time.time())
    claims = {
        "sub": str(uuid.uuid4()),
        "aud": "authenticated",
        "role": "authenticated",
        "email": "fan@example.com",
        "iat": now,
        "exp": now + 600,
        "iss": "https://abcdefgh.supabase.co/auth/v1",
        "app_metadata": {"provider": "email", "tier": 1},
    }
    claims.update(overrides)
    return claims


def b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


@pytest.fixture(scope="module")
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key():
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def jwks_server(rsa_key, ec_key):
    """A Supabase-like project serving its JWKS at /auth/v1/.well-known/jwks.json."""
    rsa_pub = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    ec_pub = ec_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    keys = [
        {**jose_jwk.construct(rsa_pub, "RS256").to_dict(), "kid": "rsa-1", "alg": "RS256", "use": "sig"},
        {**jose_jwk.construct(ec_pub, "ES256").to_dict(), "kid": "ec-1", "alg": "ES256", "use": "sig"},
    ]
    app = FastAPI()

    @app.get("/auth/v1/.well-known/jwks.json")
    async def jwks():
        return {"keys": keys}

    with ThreadedServer(app) as server:
        yield server, rsa_pub


@pytest.fixture
async def client(make_client, jwks_server):
    server, _ = jwks_server
    async with make_client(build_probe_app, supabase_url=server.url) as c:
        yield c


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


async def test_token_minted_by_shared_is_accepted(client):
    uid = str(uuid.uuid4())
    token = mint_access_token(TEST_JWT_SECRET, user_id=uid, email="a@example.com", tier=2)
    r = await client.get("/me", headers=bearer(token))
    assert r.status_code == 200
    assert r.json() == {"user_id": uid, "email": "a@example.com", "tier": 2, "role": "authenticated"}


async def test_token_minted_by_pyjwt_with_supabase_claims_is_accepted(client):
    claims = supabase_claims()
    token = pyjwt.encode(claims, TEST_JWT_SECRET, algorithm="HS256")
    r = await client.get("/me", headers=bearer(token))
    assert r.status_code == 200
    assert r.json()["user_id"] == claims["sub"] and r.json()["tier"] == 1


async def test_audience_as_array_is_accepted(client):
    token = pyjwt.encode(supabase_claims(aud=["authenticated", "other"]), TEST_JWT_SECRET, algorithm="HS256")
    assert (await client.get("/me", headers=bearer(token))).status_code == 200


async def test_asymmetric_tokens_from_the_jwks_are_accepted(client, rsa_key, ec_key):
    rs = pyjwt.encode(supabase_claims(), rsa_key, algorithm="RS256", headers={"kid": "rsa-1"})
    es = pyjwt.encode(supabase_claims(), ec_key, algorithm="ES256", headers={"kid": "ec-1"})
    assert (await client.get("/me", headers=bearer(rs))).status_code == 200
    assert (await client.get("/me", headers=bearer(es))).status_code == 200


@pytest.mark.parametrize(
    "case",
    [
        "expired",
        "not_yet_valid",
        "wrong_audience",
        "wrong_secret",
        "alg_none",
        "hs256_with_public_key",
        "unknown_kid",
        "legacy_anon_key",
        "no_expiry",
        "garbage",
        "tampered_payload",
    ],
)
async def test_bad_tokens_get_401(client, case, jwks_server, rsa_key):
    _, rsa_pub = jwks_server
    now = int(time.time())
    if case == "expired":
        token = pyjwt.encode(supabase_claims(exp=now - 10, iat=now - 700), TEST_JWT_SECRET, algorithm="HS256")
    elif case == "not_yet_valid":
        token = pyjwt.encode(supabase_claims(nbf=now + 300), TEST_JWT_SECRET, algorithm="HS256")
    elif case == "wrong_audience":
        token = pyjwt.encode(supabase_claims(aud="anon"), TEST_JWT_SECRET, algorithm="HS256")
    elif case == "wrong_secret":
        token = pyjwt.encode(supabase_claims(), "another-secret-another-secret-another-secret", algorithm="HS256")
    elif case == "alg_none":
        token = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(supabase_claims())}."
    elif case == "hs256_with_public_key":
        # The classic key-confusion attack: HMAC keyed with the RSA public key the JWKS publishes.
        import hashlib
        import hmac

        signing_input = f"{b64({'alg': 'HS256', 'typ': 'JWT', 'kid': 'rsa-1'})}.{b64(supabase_claims())}"
        sig = (
            base64.urlsafe_b64encode(hmac.new(rsa_pub, signing_input.encode(), hashlib.sha256).digest())
            .rstrip(b"=")
            .decode()
        )
        token = f"{signing_input}.{sig}"
    elif case == "unknown_kid":
        token = pyjwt.encode(supabase_claims(), rsa_key, algorithm="RS256", headers={"kid": "nope"})
    elif case == "legacy_anon_key":
        token = pyjwt.encode(
            {"iss": "supabase", "ref": "abcdefgh", "role": "anon", "iat": now, "exp": now + 600},
            TEST_JWT_SECRET,
            algorithm="HS256",
        )
    elif case == "no_expiry":
        claims = supabase_claims()
        del claims["exp"]
        token = pyjwt.encode(claims, TEST_JWT_SECRET, algorithm="HS256")
    elif case == "garbage":
        token = "not.a.jwt"
    else:
        good = pyjwt.encode(supabase_claims(), TEST_JWT_SECRET, algorithm="HS256")
        header, _, sig = good.split(".")
        token = f"{header}.{b64(supabase_claims(app_metadata={'tier': 2}))}.{sig}"
    r = await client.get("/me", headers=bearer(token))
    assert r.status_code == 401, (case, r.text)
    assert r.headers["www-authenticate"] == "Bearer"
    assert r.json()["detail"]["code"] == "INVALID_TOKEN"


@pytest.mark.parametrize("header", ["Bearer", "Basic abc", "Bearer ", "token-without-scheme", "Bearer a b"])
async def test_malformed_authorization_headers_get_401(client, header):
    r = await client.get("/me", headers={"Authorization": header})
    assert r.status_code == 401
    assert r.json()["detail"]["code"] in {"MALFORMED_AUTHORIZATION", "INVALID_TOKEN", "NOT_AUTHENTICATED"}


async def test_missing_token_gets_401(client):
    r = await client.get("/me")
    assert r.status_code == 401 and r.json()["detail"]["code"] == "NOT_AUTHENTICATED"


async def test_requires_tier_answers_402(client, tokens):
    free = tokens.user(tier=0)
    r = await client.get("/pro-only", headers=bearer(free))
    assert r.status_code == 402
    assert r.json()["detail"]["code"] == "INSUFFICIENT_TIER"
    assert (await client.get("/pro-only", headers=bearer(tokens.user(tier=1)))).status_code == 200


async def test_service_routes_need_a_service_token(client, tokens):
    assert (await client.get("/internal", headers=bearer(tokens.user(tier=2)))).status_code == 403
    r = await client.get("/internal", headers=bearer(mint_service_token(TEST_JWT_SECRET, "payment")))
    assert r.status_code == 200 and r.json() == {"service": "service:payment"}


async def test_previous_secret_is_accepted_during_rotation(make_client):
    old = "old-secret-old-secret-old-secret-old-secret"
    token = mint_access_token(old, user_id=str(uuid.uuid4()))
    async with make_client(build_probe_app) as c:
        assert (await c.get("/me", headers=bearer(token))).status_code == 401
    async with make_client(build_probe_app, supabase_jwt_secret_previous=old) as c:
        assert (await c.get("/me", headers=bearer(token))).status_code == 200
