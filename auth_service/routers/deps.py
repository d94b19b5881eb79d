"""What the auth routers depend on: the service, per-route rate limits, the caller's account."""

from __future__ import annotations

import uuid

from fastapi import Depends, Request

from auth_service.repositories import users as users_repo
from auth_service.service import Auth
from shared import tombstones
from shared.auth import CurrentUser, get_current_user
from shared.errors import INVALID_TOKEN, USER_DELETED, USER_NOT_FOUND, USER_TOKEN_REQUIRED
from shared.openapi import raises
from shared.ratelimit import RateLimit

BEARER = {"WWW-Authenticate": "Bearer"}


def auth_of(request: Request) -> Auth:
    return request.app.state.auth


def limited(scope: str, setting: str):
    """A per-route Redis rate limit whose size comes from the service's settings."""

    async def dependency(request: Request) -> None:
        limit = getattr(request.app.state.settings, setting)
        if limit > 0:
            await RateLimit(limit, 60, scope=f"auth:{scope}")(request)

    return Depends(dependency)


@raises(USER_NOT_FOUND)
async def current_account(request: Request, user: CurrentUser = Depends(get_current_user)) -> CurrentUser:
    """A user token (not a service token) whose subject is a user Auth knows.

    Auth checks its own table (one primary-key read): a deletion counts here from its commit on,
    before any event, and a signed token for a user that never existed here (a database restored
    from before the sign-up) is refused too. Other services only know deletions (shared.tombstones)."""
    if user.is_service:
        raise USER_TOKEN_REQUIRED("This route needs a user's token.")
    try:
        uuid.UUID(user.user_id)
    except ValueError:
        raise INVALID_TOKEN("The token's subject is not a user.", headers=BEARER) from None
    auth = auth_of(request)
    async with auth.pool.acquire() as conn:
        known = await users_repo.exists(conn, user.user_id)
    if not known:
        if await _deleted(request, user.user_id):
            raise USER_DELETED(headers=BEARER)
        raise USER_NOT_FOUND(headers=BEARER)
    return user


async def _deleted(request: Request, user_id: str) -> bool:
    """Deleted (by another Auth process whose event has not reached this one yet) or never known."""
    state = request.app.state
    try:
        return await state.redis.zscore(tombstones.redis_key(state.keys), user_id) is not None
    except Exception:  # Redis down: the account is gone either way
        return False
