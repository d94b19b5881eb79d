"""Sign-in with Google, Apple (ID tokens checked against their JWKS) and Facebook (Graph API)."""
from __future__ import annotations

import logging

from fastapi import APIRouter, Request

from auth_service.service import Auth, auth_of, limited
from auth_service.models import AuthResult, FacebookBody, IdTokenBody
from auth_service.oauth import OAuthError, OAuthUnavailable, ProviderIdentity
from auth_service.repositories import identities as identities_repo
from auth_service.repositories import users as users_repo
from shared.auth import get_optional_user
from shared.errors import APIError

log = logging.getLogger("auth_service.oauth")
router = APIRouter(tags=["oauth"])


async def _verified(coro) -> ProviderIdentity:
    try:
        return await coro
    except OAuthError as exc:
        raise APIError(401, "INVALID_OAUTH_TOKEN", f"Sign-in refused: {exc}.") from None
    except OAuthUnavailable as exc:
        raise APIError(503, "OAUTH_PROVIDER_UNAVAILABLE", f"Sign-in is unavailable right now: {exc}.", headers={"Retry-After": "5"}) from None


async def _sign_in(auth: Auth, request: Request, identity: ProviderIdentity) -> dict:
    """Finds or creates the account for a provider identity.

    1. a known identity signs in its user;
    2. else a verified email that matches an account links to it (a pending, never-verified
       sign-up is confirmed and its password dropped: whoever set it never proved the address);
    3. else a guest's token turns the guest into this account (same id);
    4. else a new account is created.
    """
    guest_claims = await get_optional_user(request)
    notices: list[dict] = []
    async with auth.pool.acquire() as conn:
        async with conn.transaction():
            linked = await identities_repo.get(conn, identity.provider, identity.subject)
            user = await users_repo.get(conn, linked["user_id"], for_update=True) if linked else None
            if user is None and identity.email and identity.email_verified:
                user = await users_repo.get_by_email(conn, identity.email, for_update=True)
                if user is not None:
                    await identities_repo.insert(conn, provider=identity.provider, subject=identity.subject, user_id=user["id"], email=identity.email)
                    if not user["confirmed"]:
                        user, notices = await auth.confirm(conn, user, clear_password=True)
            if user is None and guest_claims is not None and guest_claims.is_guest and not guest_claims.is_service:
                guest = await users_repo.get(conn, guest_claims.user_id, for_update=True)
                if guest is not None and guest["temporary_account"] and not guest["confirmed"] and guest["email"] in (None, identity.email):
                    await identities_repo.insert(conn, provider=identity.provider, subject=identity.subject, user_id=guest["id"], email=identity.email)
                    email = identity.email if identity.email_verified else None
                    user, notices = await auth.confirm(conn, guest, email=email, clear_password=True)
            if user is None:
                email = identity.email if identity.email_verified else None
                if email and await users_repo.get_by_email(conn, email):
                    email = None  # cannot happen after step 2, kept for safety
                user = await users_repo.insert(conn, email=email, password_hash=None, confirmed=True, temporary=False)
                await identities_repo.insert(conn, provider=identity.provider, subject=identity.subject, user_id=user["id"], email=identity.email)
                if identity.name or identity.picture:
                    await users_repo.update_profile(conn, user["id"], {k: v for k, v in (("name", identity.name), ("avatar_url", identity.picture)) if v})
                await auth.emit_created(conn, user, is_guest=False)
            await users_repo.touch_login(conn, user["id"])
            user = await users_repo.get(conn, user["id"])
            result = await auth.auth_result(conn, user, provider=identity.provider)
    await auth.send_referral_notices(notices)
    return result


@router.post("/oauth/google", response_model=AuthResult, dependencies=[limited("oauth", "rate_limit_oauth_per_minute")])
async def google(body: IdTokenBody, request: Request):
    auth = auth_of(request)
    return await _sign_in(auth, request, await _verified(auth.oauth.google.verify(body.id_token)))


@router.post("/oauth/apple", response_model=AuthResult, dependencies=[limited("oauth", "rate_limit_oauth_per_minute")])
async def apple(body: IdTokenBody, request: Request):
    auth = auth_of(request)
    return await _sign_in(auth, request, await _verified(auth.oauth.apple.verify(body.id_token)))


@router.post("/oauth/facebook", response_model=AuthResult, dependencies=[limited("oauth", "rate_limit_oauth_per_minute")])
async def facebook(body: FacebookBody, request: Request):
    auth = auth_of(request)
    return await _sign_in(auth, request, await _verified(auth.oauth.facebook.verify(body.access_token)))
