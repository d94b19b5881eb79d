"""The signed-in user's own account: read, edit the profile, delete. Every route acts on the
token's subject only; there is no route that takes another user's id."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from auth_service import errors
from auth_service.models import Profile, ProfileUpdate, UserOut
from auth_service.repositories import users as users_repo
from auth_service.routers.deps import auth_of, current_account
from shared.auth import CurrentUser
from shared.errors import USER_TOKEN_REQUIRED, documented

router = APIRouter(tags=["users"], responses=documented(USER_TOKEN_REQUIRED))
ACCOUNT = Depends(current_account)


@router.get("/users/me", response_model=UserOut, responses=documented(errors.USER_NOT_FOUND))
async def me(request: Request, caller: CurrentUser = ACCOUNT):
    auth = auth_of(request)
    async with auth.pool.acquire() as conn:
        row = await users_repo.get_me(conn, caller.user_id)
    if row is None:
        raise errors.USER_NOT_FOUND()
    profile = (
        {
            "name": row["name"],
            "avatar_url": row["avatar_url"],
            "phone": row["phone"],
            "country": row["country"],
            "language": row["language"],
            "preferences": row["preferences"],
            "onboarding_status": row["onboarding_status"],
            "created_at": row["profile_created_at"],
            "updated_at": row["profile_updated_at"],
        }
        if row["has_profile"]
        else None
    )
    return auth.user_view(row, profile, list(row["providers"]))


@router.put(
    "/users/me/details",
    response_model=Profile,
    responses=documented(errors.USER_NOT_FOUND, errors.PREFERENCES_TOO_LARGE),
)
async def update_details(body: ProfileUpdate, request: Request, caller: CurrentUser = ACCOUNT):
    return await auth_of(request).update_profile(caller.user_id, body.model_dump(exclude_unset=True))


@router.delete("/users/me", status_code=204, responses=documented(errors.USER_NOT_FOUND))
async def delete_me(request: Request, caller: CurrentUser = ACCOUNT):
    """Deletes the account, its profile, codes, identities and refresh tokens (so no token can be
    refreshed), and publishes user.deleted so every service erases its data. Access tokens
    already issued stay valid until they expire (at most ACCESS_TOKEN_TTL_SECONDS)."""
    await auth_of(request).delete_account(caller.user_id)
    return Response(status_code=204)
