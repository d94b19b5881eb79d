"""Verifying third-party sign-ins: Google and Apple ID tokens against their JWKS, Facebook access
tokens through the Graph API's token check.

An ID token is accepted only when its signature verifies with a key from the provider's JWKS
(chosen by `kid`, RS256 only), its issuer is the provider's, its audience is one of our client
ids and it has not expired. Any failure is an `OAuthError` (401); an unreachable provider is an
`OAuthUnavailable` (503).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import Any

import httpx
from jose import jwk, jwt
from jose.exceptions import ExpiredSignatureError, JWTError


class OAuthError(Exception):
    pass


class OAuthUnavailable(Exception):
    pass


@dataclass(frozen=True)
class ProviderIdentity:
    provider: str
    subject: str
    email: str | None
    email_verified: bool
    name: str | None = None
    picture: str | None = None


class JWKS:
    """A provider's signing keys, cached; refetched when stale or on an unknown kid (at most every 30 s)."""

    def __init__(self, url: str, client: httpx.AsyncClient, ttl_seconds: float = 3600, min_refetch_seconds: float = 30):
        self.url = url
        self.client = client
        self.ttl = ttl_seconds
        self.min_refetch = min_refetch_seconds
        self._keys: dict[str, dict[str, Any]] = {}
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()

    async def _fetch(self) -> None:
        try:
            response = await self.client.get(self.url)
            response.raise_for_status()
            keys = response.json()["keys"]
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            if not self._keys:
                raise OAuthUnavailable(f"cannot fetch the signing keys: {type(exc).__name__}") from exc
            return  # keep the keys we had
        finally:
            self._fetched_at = time.monotonic()
        self._keys = {k["kid"]: k for k in keys if isinstance(k, dict) and "kid" in k}

    async def get(self, kid: str) -> dict[str, Any] | None:
        now = time.monotonic()
        if now - self._fetched_at > self.ttl or (kid not in self._keys and now - self._fetched_at > self.min_refetch):
            async with self._lock:
                now = time.monotonic()
                if now - self._fetched_at > self.ttl or (
                    kid not in self._keys and now - self._fetched_at > self.min_refetch
                ):
                    await self._fetch()
        return self._keys.get(kid)


def _as_bool(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


class IdTokenVerifier:
    def __init__(
        self, provider: str, jwks: JWKS, *, issuers: list[str], client_ids: list[str], leeway_seconds: int = 30
    ):
        self.provider = provider
        self.jwks = jwks
        self.issuers = set(issuers)
        self.client_ids = set(client_ids)
        self.leeway = leeway_seconds

    async def verify(self, id_token: str) -> ProviderIdentity:
        if not self.client_ids:
            raise OAuthUnavailable(f"{self.provider} sign-in is not configured")
        try:
            header = jwt.get_unverified_header(id_token)
        except JWTError as exc:
            raise OAuthError("the ID token is malformed") from exc
        if header.get("alg") != "RS256":
            raise OAuthError("the ID token's algorithm is not accepted")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise OAuthError("the ID token has no key id")
        key = await self.jwks.get(kid)
        if key is None:
            raise OAuthError("the ID token was not signed by a known key")
        try:
            claims = jwt.decode(
                id_token,
                jwk.construct(key, algorithm="RS256"),
                algorithms=["RS256"],
                options={
                    "verify_aud": False,
                    "verify_iss": False,
                    "verify_at_hash": False,
                    "require_exp": True,
                    "require_iat": False,
                    "leeway": self.leeway,
                },
            )
        except ExpiredSignatureError as exc:
            raise OAuthError("the ID token has expired") from exc
        except JWTError as exc:
            raise OAuthError("the ID token's signature or claims are invalid") from exc
        if claims.get("iss") not in self.issuers:
            raise OAuthError("the ID token was issued by someone else")
        aud = claims.get("aud")
        audiences = set(aud) if isinstance(aud, list) else {aud}
        if not audiences & self.client_ids:
            raise OAuthError("the ID token is for another application")
        if "exp" not in claims:
            raise OAuthError("the ID token has no expiry")
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise OAuthError("the ID token has no subject")
        email = claims.get("email")
        email = email.strip().lower() if isinstance(email, str) and email.strip() else None
        return ProviderIdentity(
            provider=self.provider,
            subject=sub,
            email=email,
            email_verified=bool(email) and _as_bool(claims.get("email_verified")),
            name=claims.get("name") if isinstance(claims.get("name"), str) else None,
            picture=claims.get("picture") if isinstance(claims.get("picture"), str) else None,
        )


class FacebookVerifier:
    """`GET /debug_token` with the app token proves the user token is valid and for our app;
    `GET /me` (with appsecret_proof) gives the id, name and email. Facebook only returns an email
    the person has confirmed, so it counts as verified."""

    def __init__(self, graph_url: str, app_id: str | None, app_secret: str | None, client: httpx.AsyncClient):
        self.graph = graph_url.rstrip("/")
        self.app_id = app_id
        self.app_secret = app_secret
        self.client = client

    async def _get(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        try:
            response = await self.client.get(f"{self.graph}{path}", params=params)
        except httpx.HTTPError as exc:
            raise OAuthUnavailable(f"Facebook is unreachable: {type(exc).__name__}") from exc
        if response.status_code >= 500:
            raise OAuthUnavailable(f"Facebook answered {response.status_code}")
        try:
            body = response.json()
        except ValueError as exc:
            raise OAuthUnavailable("Facebook answered something that is not JSON") from exc
        if response.status_code >= 400 or not isinstance(body, dict) or "error" in body:
            raise OAuthError("Facebook rejected the access token")
        return body

    async def verify(self, access_token: str) -> ProviderIdentity:
        if not (self.app_id and self.app_secret):
            raise OAuthUnavailable("facebook sign-in is not configured")
        debug = await self._get(
            "/debug_token", {"input_token": access_token, "access_token": f"{self.app_id}|{self.app_secret}"}
        )
        data = debug.get("data") or {}
        if not data.get("is_valid"):
            raise OAuthError("the Facebook access token is not valid")
        if str(data.get("app_id")) != str(self.app_id):
            raise OAuthError("the Facebook access token is for another application")
        expires_at = data.get("expires_at")
        if isinstance(expires_at, int) and 0 < expires_at < time.time():
            raise OAuthError("the Facebook access token has expired")
        proof = hmac.new(self.app_secret.encode(), access_token.encode(), hashlib.sha256).hexdigest()
        me = await self._get(
            "/me", {"fields": "id,name,email,picture", "access_token": access_token, "appsecret_proof": proof}
        )
        user_id = str(me.get("id") or "")
        if not user_id or user_id != str(data.get("user_id")):
            raise OAuthError("the Facebook profile does not match the token")
        email = me.get("email")
        email = email.strip().lower() if isinstance(email, str) and email.strip() else None
        picture = (
            ((me.get("picture") or {}).get("data") or {}).get("url") if isinstance(me.get("picture"), dict) else None
        )
        return ProviderIdentity(
            "facebook",
            user_id,
            email,
            bool(email),
            me.get("name") if isinstance(me.get("name"), str) else None,
            picture,
        )


class OAuthProviders:
    def __init__(self, settings):
        self.client = httpx.AsyncClient(timeout=settings.oauth_timeout_seconds)
        self.google = IdTokenVerifier(
            "google",
            JWKS(settings.google_jwks_url, self.client),
            issuers=settings.google_issuers,
            client_ids=settings.google_client_ids,
        )
        self.apple = IdTokenVerifier(
            "apple",
            JWKS(settings.apple_jwks_url, self.client),
            issuers=settings.apple_issuers,
            client_ids=settings.apple_client_ids,
        )
        self.facebook = FacebookVerifier(
            settings.facebook_graph_url, settings.facebook_app_id, settings.facebook_app_secret, self.client
        )

    async def close(self) -> None:
        await self.client.aclose()
