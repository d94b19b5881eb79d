"""Sign-in with Google, Apple (ID tokens checked against their JWKS) and Facebook (Graph API); a
guest's token turns the guest into the account (auth_service.service.provider_sign_in)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from auth_service import errors
from auth_service.models import AuthResult, FacebookBody, IdTokenBody
from auth_service.oauth import OAuthError, OAuthUnavailable, ProviderIdentity
from auth_service.routers.deps import auth_of, limited
from shared.auth import CurrentUser, get_optional_user
from shared.errors import documented

router = APIRouter(tags=["oauth"])

OAUTH_ERRORS = documented(errors.INVALID_OAUTH_TOKEN, errors.OAUTH_PROVIDER_UNAVAILABLE)
GUEST = Depends(get_optional_user)


async def _verified(coro) -> ProviderIdentity:
    try:
        return await coro
    except OAuthError as exc:
        raise errors.INVALID_OAUTH_TOKEN(f"Sign-in refused: {exc}.") from None
    except OAuthUnavailable as exc:
        raise errors.OAUTH_PROVIDER_UNAVAILABLE(
            f"Sign-in is unavailable right now: {exc}.", headers={"Retry-After": "5"}
        ) from None


async def _sign_in(request: Request, provider: str, token: str, guest: CurrentUser | None) -> dict:
    """The provider vouches for the token (auth_service.oauth), then the account is found or made."""
    auth = auth_of(request)
    identity = await _verified(getattr(auth.oauth, provider).verify(token))
    return await auth.sign_in_with(identity, guest)


PROVIDER_ROUTE = {
    "response_model": AuthResult,
    "dependencies": [limited("oauth", "rate_limit_oauth_per_minute")],
    "responses": OAUTH_ERRORS,
}


@router.post("/oauth/google", **PROVIDER_ROUTE)
async def google(body: IdTokenBody, request: Request, guest: CurrentUser | None = GUEST):
    return await _sign_in(request, "google", body.id_token, guest)


@router.post("/oauth/apple", **PROVIDER_ROUTE)
async def apple(body: IdTokenBody, request: Request, guest: CurrentUser | None = GUEST):
    return await _sign_in(request, "apple", body.id_token, guest)


@router.post("/oauth/facebook", **PROVIDER_ROUTE)
async def facebook(body: FacebookBody, request: Request, guest: CurrentUser | None = GUEST):
    return await _sign_in(request, "facebook", body.access_token, guest)
