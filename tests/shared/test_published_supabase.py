"""Token validation on the claim sets Supabase documents (Auth > JWT Claims Reference; see
tests/fixtures/providers/README.md), not on the ones our own minting writes.

Only `iat`/`exp` are moved to now (the documented ones expired in 2022); every other claim is as
published. A user token is accepted; the anon and service_role keys (no `sub`) are not user tokens.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import jwt as pyjwt
import pytest

from shared.auth import InvalidToken, TokenValidator, user_from_claims
from shared.testing.env import TEST_JWT_SECRET

CLAIMS_DIR = Path(__file__).parents[1] / "fixtures/providers/supabase"


def documented(name: str, **changes) -> dict:
    claims = json.loads((CLAIMS_DIR / f"{name}.claims.json").read_text())
    lifetime = claims["exp"] - claims["iat"]
    now = int(time.time())
    return {**claims, "iat": now, "exp": now + lifetime, **changes}


def signed(claims: dict) -> str:
    return pyjwt.encode(claims, TEST_JWT_SECRET, algorithm="HS256")


async def test_a_documented_user_token_is_accepted_with_its_identity():
    claims = documented("authenticated-user")
    validator = TokenValidator(TEST_JWT_SECRET)
    decoded = await validator.decode(signed(claims))
    user = user_from_claims(decoded)
    assert (user.user_id, user.email, user.role, user.tier) == (claims["sub"], claims["email"], "authenticated", 0)
    # The rest of Supabase's claim set is kept as it came (amr, aal, session, metadata).
    assert decoded["amr"] == claims["amr"] and decoded["session_id"] == claims["session_id"]


async def test_an_audience_list_is_accepted_as_documented():
    claims = documented("authenticated-user", aud=["authenticated"])
    assert (await TokenValidator(TEST_JWT_SECRET).decode(signed(claims)))["sub"] == claims["sub"]


@pytest.mark.parametrize("name", ["anon", "service-role"])
async def test_the_documented_project_keys_are_not_user_tokens(name):
    with pytest.raises(InvalidToken):
        await TokenValidator(TEST_JWT_SECRET).decode(signed(documented(name)))


async def test_the_documented_token_as_published_is_expired():
    claims = json.loads((CLAIMS_DIR / "authenticated-user.claims.json").read_text())
    with pytest.raises(InvalidToken, match="expired"):
        await TokenValidator(TEST_JWT_SECRET).decode(signed(claims))
