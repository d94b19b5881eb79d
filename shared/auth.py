"""JWT validation for every service (the plan's per-service validation), and token minting.

Tokens are Supabase-format: HS256 signed with SUPABASE_JWT_SECRET, aud "authenticated",
role "authenticated", sub = user uuid, app_metadata.tier. Asymmetric Supabase tokens
(ES256/RS256) are accepted when SUPABASE_URL is set, with the key chosen by `kid` from the
project's JWKS and the algorithm from an explicit allow-list. The algorithm is pinned per key
type: an HS256 header is only ever checked against the shared secret, an asymmetric header only
against a JWKS public key, so a public key can never be used as an HMAC secret.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import Depends, Request
from jose import jwk, jwt
from jose.exceptions import ExpiredSignatureError, JWTClaimsError, JWTError

from shared import errors
from shared.errors import APIError
from shared.hs256 import HS256Verifier

AUDIENCE = "authenticated"
TIER_FREE, TIER_PRO, TIER_MAX = 0, 1, 2
TIER_NAMES = {TIER_FREE: "free", TIER_PRO: "pro", TIER_MAX: "max"}
SERVICE_ROLE = "service"
ADMIN_ROLE = "admin"  # in app_metadata.roles (API.md "Roles beyond users")
_USER_KEY = "scenextras.user"


@dataclass(frozen=True, slots=True)
class CurrentUser:
    user_id: str
    email: str | None
    role: str
    tier: int
    claims: dict[str, Any] = field(repr=False, compare=False)

    @property
    def is_service(self) -> bool:
        return self.role == SERVICE_ROLE

    @property
    def is_guest(self) -> bool:
        return bool(self.claims.get("is_anonymous"))

    @property
    def roles(self) -> frozenset[str]:
        app_metadata = self.claims.get("app_metadata")
        roles = app_metadata.get("roles") if isinstance(app_metadata, dict) else None
        return frozenset(r for r in roles if isinstance(r, str)) if isinstance(roles, list) else frozenset()

    @property
    def is_admin(self) -> bool:
        return ADMIN_ROLE in self.roles


class InvalidToken(Exception):
    pass


def _is_uuid(value: object) -> bool:
    if not isinstance(value, str) or len(value) != 36:
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def _unauthorized(code: errors.ErrorCode, message: str | None = None) -> APIError:
    return code(message, headers=_CHALLENGE)


class JWKSCache:
    """Supabase JWKS (`SUPABASE_URL/auth/v1/.well-known/jwks.json`), cached, refetched on an unknown kid."""

    def __init__(self, url: str, ttl_seconds: float = 600, min_refetch_seconds: float = 30):
        self.url = url
        self.ttl = ttl_seconds
        self.min_refetch = min_refetch_seconds
        self._keys: dict[str, dict[str, Any]] = {}
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()

    async def get(self, kid: str) -> dict[str, Any] | None:
        now = time.monotonic()
        stale = now - self._fetched_at > self.ttl
        if kid not in self._keys or stale:
            async with self._lock:
                now = time.monotonic()
                if (
                    kid not in self._keys and now - self._fetched_at > self.min_refetch
                ) or now - self._fetched_at > self.ttl:
                    await self._fetch()
        return self._keys.get(kid)

    async def _fetch(self) -> None:
        try:
            async with httpx.AsyncClient(timeout=5) as client:
                response = await client.get(self.url)
                response.raise_for_status()
                keys = response.json().get("keys", [])
        except (httpx.HTTPError, ValueError):
            # Keep the keys we had; an unknown kid stays unknown until the next try.
            self._fetched_at = time.monotonic()
            return
        self._keys = {k["kid"]: k for k in keys if "kid" in k}
        self._fetched_at = time.monotonic()


class TokenValidator:
    def __init__(
        self,
        secret: str,
        *,
        previous_secrets: list[str] | None = None,
        supabase_url: str | None = None,
        asymmetric_algorithms: list[str] | None = None,
        leeway_seconds: int = 0,
    ):
        self.secret = secret
        # During a secret rotation tokens signed with the previous secret stay valid until they
        # expire; new tokens are always signed with `secret`.
        self.secrets = [secret, *[p for p in (previous_secrets or []) if p and p != secret]]
        self.leeway = leeway_seconds
        self.asymmetric_algorithms = [a for a in (asymmetric_algorithms or []) if a in {"ES256", "RS256"}]
        self.jwks = (
            JWKSCache(supabase_url.rstrip("/") + "/auth/v1/.well-known/jwks.json")
            if supabase_url and self.asymmetric_algorithms
            else None
        )
        self._options = {"leeway": leeway_seconds, "require_exp": True, "require_sub": False}
        # Valid HS256 tokens without jose's overhead; every other token still goes to jose.
        self._hs256 = HS256Verifier(self.secrets, audience=AUDIENCE, leeway_seconds=leeway_seconds)
        # token -> claims for tokens that passed full validation. A token is immutable and
        # signed, so re-verifying it on every request only burns CPU; expiry is still checked
        # on every hit. Bounded, so a flood of distinct tokens cannot grow memory.
        self._verified: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._verified_max = 10_000

    def _check_claims(self, claims: dict[str, Any]) -> dict[str, Any]:
        sub = claims.get("sub")
        if not sub:
            # Supabase's legacy anon / service_role keys have no sub: they are not user tokens.
            raise InvalidToken("token has no subject")
        # Every service keys rows by the subject (uuid columns): a signed token whose subject is
        # not a user id (or a service name on a service token) is refused here, once, rather than
        # reaching SQL as a value PostgreSQL cannot take.
        if claims.get("role") == SERVICE_ROLE:
            if not (isinstance(sub, str) and sub.startswith("service:") and len(sub) <= 100):
                raise InvalidToken("service token subject is not a service name")
        elif not _is_uuid(sub):
            raise InvalidToken("token subject is not a user id")
        if "exp" not in claims:
            raise InvalidToken("token has no expiry")
        return claims

    def decode_hs256(self, token: str) -> dict[str, Any]:
        error: Exception | None = None
        for secret in self.secrets:
            try:
                claims = jwt.decode(token, secret, algorithms=["HS256"], audience=AUDIENCE, options=self._options)
            except ExpiredSignatureError as exc:
                raise InvalidToken("token expired") from exc
            except JWTClaimsError as exc:
                raise InvalidToken(str(exc) or "invalid claims") from exc
            except JWTError as exc:
                error = exc
                continue
            return self._check_claims(claims)
        raise InvalidToken(str(error) or "invalid token") from error

    async def decode(self, token: str) -> dict[str, Any]:
        claims = self._verified.get(token)
        if claims is not None:
            if claims["exp"] + self.leeway > time.time():
                return claims
            self._verified.pop(token, None)
            raise InvalidToken("token expired")
        claims = await self._decode(token)
        self._verified[token] = claims
        if len(self._verified) > self._verified_max:
            self._verified.popitem(last=False)
        return claims

    async def _decode(self, token: str) -> dict[str, Any]:
        claims = self._hs256.verify(token)
        if claims is not None:
            return self._check_claims(claims)
        try:
            header = jwt.get_unverified_header(token)
        except JWTError as exc:
            raise InvalidToken("malformed token") from exc
        if not isinstance(header, dict):
            raise InvalidToken("malformed token")
        alg = header.get("alg")
        if alg == "HS256":
            return self.decode_hs256(token)
        if alg in self.asymmetric_algorithms and self.jwks is not None:
            kid = header.get("kid")
            if not isinstance(kid, str):
                raise InvalidToken("token has no key id")
            key = await self.jwks.get(kid)
            if key is None:
                raise InvalidToken("unknown signing key")
            key_alg = key.get("alg", alg)
            if key_alg != alg:
                raise InvalidToken("algorithm does not match the key")
            try:
                public_key = jwk.construct(key, algorithm=alg)
                claims = jwt.decode(token, public_key, algorithms=[alg], audience=AUDIENCE, options=self._options)
            except ExpiredSignatureError as exc:
                raise InvalidToken("token expired") from exc
            except (JWTClaimsError, JWTError) as exc:
                raise InvalidToken(str(exc) or "invalid token") from exc
            return self._check_claims(claims)
        raise InvalidToken("signing algorithm not accepted")


def user_from_claims(claims: dict[str, Any]) -> CurrentUser:
    app_metadata = claims.get("app_metadata") or {}
    tier = app_metadata.get("tier", 0) if isinstance(app_metadata, dict) else 0
    try:
        tier = max(TIER_FREE, min(TIER_MAX, int(tier)))
    except (TypeError, ValueError):
        tier = TIER_FREE
    return CurrentUser(
        user_id=str(claims["sub"]),
        email=claims.get("email"),
        role=str(claims.get("role") or "authenticated"),
        tier=tier,
        claims=claims,
    )


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized(errors.MALFORMED_AUTHORIZATION)
    return token.strip()


def is_deleted(app, user_id: str) -> bool:
    """Deleted users' tokens stay signed and unexpired: refused from the moment the deletion is
    known in this process (shared.tombstones; an in-memory lookup, no I/O). For paths that decode
    tokens themselves (WebSockets)."""
    tombstones = getattr(app.state, "tombstones", None)
    return tombstones is not None and user_id in tombstones


async def require_known_user(app, user_id: str) -> None:
    """A user Auth never had (shared.known_users; a dict lookup once known) is refused with 401
    `USER_NOT_FOUND`. Auth has no such cache: its own routes read its users table. For paths that
    decode tokens themselves (WebSockets) too."""
    known_users = getattr(app.state, "known_users", None)
    if known_users is None:
        return
    answer = await known_users.check(user_id)
    if answer == "known":
        return
    if answer == "deleted":
        # Auth knows of a deletion this process has not heard of yet: refuse as the tombstones would.
        tombstones = getattr(app.state, "tombstones", None)
        if tombstones is not None:
            tombstones.add(user_id)
        raise _unauthorized(errors.USER_DELETED)
    raise _unauthorized(errors.USER_NOT_FOUND)


async def authenticate(request: Request) -> CurrentUser | None:
    """The request's user, validated once per request and cached in the request's scope.

    Not request.state: that can be backed by the app's shared lifespan state (asgi-lifespan
    passes it uncopied), and a user must never leak from one request to another."""
    cached = request.scope.get(_USER_KEY)
    if cached is not None:
        return cached
    token = bearer_token(request)
    if token is None:
        return None
    validator: TokenValidator = request.app.state.token_validator
    try:
        claims = await validator.decode(token)
    except InvalidToken as exc:
        raise _unauthorized(errors.INVALID_TOKEN, f"Invalid token: {exc}.") from None
    user = user_from_claims(claims)
    if is_deleted(request.app, user.user_id):
        raise _unauthorized(errors.USER_DELETED)
    if not user.is_service:
        await require_known_user(request.app, user.user_id)
    request.scope[_USER_KEY] = user
    return user


async def get_current_user(request: Request) -> CurrentUser:
    user = await authenticate(request)
    if user is None:
        raise _unauthorized(errors.NOT_AUTHENTICATED)
    return user


async def get_optional_user(request: Request) -> CurrentUser | None:
    return await authenticate(request)


async def require_service(user: CurrentUser = Depends(get_current_user)) -> CurrentUser:
    if not user.is_service:
        raise errors.SERVICE_TOKEN_REQUIRED()
    return user


async def require_admin_or_service(user: CurrentUser = Depends(get_current_user)) -> CurrentUser:
    """Admin routes: an admin's token or a service token; users get 403."""
    if not (user.is_service or user.is_admin):
        raise errors.ADMIN_REQUIRED()
    return user


async def resolve_tier(request: Request, user: CurrentUser) -> int:
    """The caller's current tier: fresher than the token when the service keeps a tier resolver
    (subscription events keep it up to date), the token's claim otherwise."""
    resolver = getattr(request.app.state, "tier_resolver", None)
    if resolver is None or user.is_service:
        return user.tier
    return await resolver(user)


def requires_tier(minimum: int):
    async def dependency(request: Request, user: CurrentUser = Depends(get_current_user)) -> CurrentUser:
        tier = await resolve_tier(request, user)
        if tier < minimum:
            raise errors.INSUFFICIENT_TIER(
                f"This needs the {TIER_NAMES[minimum]} plan or higher.", required_tier=minimum, current_tier=tier
            )
        return user

    return dependency


def mint_access_token(
    secret: str,
    *,
    user_id: str,
    email: str | None = None,
    tier: int = TIER_FREE,
    expires_in: int = 3600,
    issuer: str = "scenextras-auth",
    session_id: str | None = None,
    is_anonymous: bool = False,
    extra_claims: dict[str, Any] | None = None,
) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": user_id,
        "aud": AUDIENCE,
        "role": "authenticated",
        "email": email,
        "iat": now,
        "exp": now + expires_in,
        "iss": issuer,
        "session_id": session_id or str(uuid.uuid4()),
        "is_anonymous": is_anonymous,
        "app_metadata": {"provider": "email", "tier": tier},
        "user_metadata": {},
    }
    if extra_claims:
        claims.update(extra_claims)
    return jwt.encode(claims, secret, algorithm="HS256")


def mint_service_token(
    secret: str, service_name: str, *, expires_in: int = 300, issuer: str = "scenextras-auth"
) -> str:
    """A short-lived token for service-to-service calls and operators (role `service`)."""
    now = int(time.time())
    claims = {
        "sub": f"service:{service_name}",
        "aud": AUDIENCE,
        "role": SERVICE_ROLE,
        "iat": now,
        "exp": now + expires_in,
        "iss": issuer,
        "app_metadata": {"tier": TIER_MAX},
    }
    return jwt.encode(claims, secret, algorithm="HS256")
