"""What the auth routers depend on: the service, per-route rate limits, the caller's account."""

from __future__ import annotations

import uuid

from fastapi import Depends, Request

from auth_service.service import Auth
from shared.auth import CurrentUser, get_current_user
from shared.errors import INVALID_TOKEN, USER_TOKEN_REQUIRED
from shared.ratelimit import RateLimit


def auth_of(request: Request) -> Auth:
    return request.app.state.auth


def limited(scope: str, setting: str):
    """A per-route Redis rate limit whose size comes from the service's settings."""

    async def dependency(request: Request) -> None:
        limit = getattr(request.app.state.settings, setting)
        if limit > 0:
            await RateLimit(limit, 60, scope=f"auth:{scope}")(request)

    return Depends(dependency)


async def current_account(user: CurrentUser = Depends(get_current_user)) -> CurrentUser:
    """A user token (not a service token) whose subject is a user id."""
    if user.is_service:
        raise USER_TOKEN_REQUIRED("This route needs a user's token.")
    try:
        uuid.UUID(user.user_id)
    except ValueError:
        raise INVALID_TOKEN("The token's subject is not a user.", headers={"WWW-Authenticate": "Bearer"}) from None
    return user
