"""The HS256 fast path (shared/hs256.py) accepts exactly the tokens python-jose accepts, with the
same claims, and leaves every other token to jose (so refusals keep jose's messages): checked
side by side on valid tokens and on each way a token can be wrong or unusual."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid

import pytest
from jose import jwt

from shared.auth import AUDIENCE, InvalidToken, TokenValidator
from shared.hs256 import HS256Verifier

SECRET = "fast-path-secret-fast-path-secret-0123456789"
PREVIOUS = "previous-secret-previous-secret-0123456789"
OTHER = "someone-elses-secret-someone-elses-secret-01"
OPTIONS = {"leeway": 0, "require_exp": True, "require_sub": False}


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def signed(claims: object, header: object | None = None, secret: str = SECRET) -> str:
    header = {"alg": "HS256", "typ": "JWT"} if header is None else header
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    signature = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def claims(**changes) -> dict:
    now = int(time.time())
    base = {"sub": str(uuid.uuid4()), "aud": AUDIENCE, "role": "authenticated", "iat": now, "exp": now + 600}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not ...}


def jose_decode(token: str, secrets: list[str]):
    for secret in secrets:
        try:
            return jwt.decode(token, secret, algorithms=["HS256"], audience=AUDIENCE, options=dict(OPTIONS))
        except Exception:
            continue
    return None


def cases() -> dict[str, str]:
    """Built when a test runs (not at collection: a 2 s expiry must still be ahead)."""
    now = int(time.time())
    return {
        "valid": signed(claims()),
        "valid, previous secret": signed(claims(), secret=PREVIOUS),
        "valid, no aud": signed(claims(aud=...)),
        "valid, aud list": signed(claims(aud=["other", AUDIENCE])),
        "valid, nbf past": signed(claims(nbf=now - 10)),
        "valid, jti": signed(claims(jti="abc")),
        "valid, exp in 2 s": signed(claims(exp=now + 2)),
        "valid, extra header fields": signed(claims(), header={"alg": "HS256", "kid": "x", "typ": "JWT"}),
        "wrong secret": signed(claims(), secret=OTHER),
        "expired": signed(claims(exp=now - 5)),
        "no exp": signed(claims(exp=...)),
        "exp float": signed(claims(exp=now + 600.5)),
        "exp string": signed(claims(exp=str(now + 600))),
        "exp bool": signed(claims(exp=True)),
        "exp null": signed(claims(exp=None)),
        "nbf future": signed(claims(nbf=now + 600)),
        "nbf string": signed(claims(nbf="soon")),
        "iat float": signed(claims(iat=now + 0.5)),
        "iat string": signed(claims(iat="yesterday")),
        "wrong aud": signed(claims(aud="anon")),
        "aud list without ours": signed(claims(aud=["a", "b"])),
        "aud list with a number": signed(claims(aud=[AUDIENCE, 1])),
        "aud number": signed(claims(aud=5)),
        "sub number": signed(claims(sub=5)),
        "jti number": signed(claims(jti=5)),
        "at_hash": signed(claims(at_hash="x")),
        "payload a list": signed([1, 2]),
        "header a list": signed(claims(), header=["HS256"]),
        "alg none": signed(claims(), header={"alg": "none"}).rsplit(".", 1)[0] + ".",
        "alg HS512 header": signed(claims(), header={"alg": "HS512"}),
        "alg missing": signed(claims(), header={"typ": "JWT"}),
        "tampered payload": signed(claims()).split(".")[0] + "." + b64(json.dumps(claims()).encode()) + ".AAAA",
        "two segments": ".".join(signed(claims()).split(".")[:2]),
        "four segments": signed(claims()) + ".x",
        "not base64": "!!!.###.$$$",
        "empty": "",
        "non-ascii": signed(claims()) + "é",
    }


@pytest.mark.parametrize("case", list(cases()))
def test_fast_path_agrees_with_jose(case: str) -> None:
    token = cases()[case]
    expected = jose_decode(token, [SECRET, PREVIOUS])
    got = HS256Verifier([SECRET, PREVIOUS], audience=AUDIENCE).verify(token)
    # Accepted here only if jose accepts, with the same claims; the unusual types jose converts
    # itself (a float exp, ...) go to jose (None here), which is allowed.
    if got is not None:
        assert got == expected
    if case.startswith("valid"):
        assert got is not None, "a valid token must take the fast path"


def test_secret_jose_reads_as_a_key_set_never_takes_the_fast_path() -> None:
    secret = json.dumps({"kty": "oct", "k": b64(b"k" * 40)})
    assert HS256Verifier([secret], audience=AUDIENCE).keys == []


@pytest.mark.asyncio
async def test_validator_refusals_keep_their_messages() -> None:
    """The fast path refuses nothing itself: jose still words every refusal."""
    validator = TokenValidator(SECRET)
    now = int(time.time())
    with pytest.raises(InvalidToken, match="token expired"):
        await validator.decode(signed(claims(exp=now - 5)))
    with pytest.raises(InvalidToken, match="Signature verification failed"):
        await validator.decode(signed(claims(), secret=OTHER))
    with pytest.raises(InvalidToken, match="Invalid audience"):
        await validator.decode(signed(claims(aud="anon")))
    with pytest.raises(InvalidToken, match="token subject is not a user id"):
        await validator.decode(signed(claims(sub="not-a-uuid")))
    good = claims()
    assert await validator.decode(signed(good)) == good
