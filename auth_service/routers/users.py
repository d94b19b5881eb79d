"""The signed-in user's own account: read, edit the profile, delete. Every route acts on the
token's subject only; there is no route that takes another user's id."""
from __future__ import annotations

import orjson
from fastapi import APIRouter, Depends, Request, Response

from auth_service.service import auth_of, current_account, not_found
from auth_service.models import Profile, ProfileUpdate, UserOut
from auth_service.repositories import users as users_repo
from shared.auth import CurrentUser
from shared.bus import emit
from shared.errors import APIError
from shared.events import EventType, make_event

router = APIRouter(tags=["users"])

# Profile values that travel in user.updated (phone and preferences stay here).
PUBLIC_FIELDS = ("name", "avatar_url", "country", "language", "onboarding_status")


@router.get("/users/me", response_model=UserOut)
async def me(request: Request, caller: CurrentUser = Depends(current_account)):
    auth = auth_of(request)
    async with auth.pool.acquire() as conn:
        row = await users_repo.get_me(conn, caller.user_id)
    if row is None:
        raise not_found()
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


@router.put("/users/me/details", response_model=Profile)
async def update_details(body: ProfileUpdate, request: Request, caller: CurrentUser = Depends(current_account)):
    auth = auth_of(request)
    changes = body.model_dump(exclude_unset=True)
    if "preferences" in changes:
        if changes["preferences"] is None:
            changes["preferences"] = {}
        size = len(orjson.dumps(changes["preferences"]))
        if size > auth.settings.preferences_max_bytes:
            raise APIError(
                422,
                "PREFERENCES_TOO_LARGE",
                f"preferences is {size} bytes; the limit is {auth.settings.preferences_max_bytes}.",
                max_bytes=auth.settings.preferences_max_bytes,
            )
    async with auth.pool.acquire() as conn:
        async with conn.transaction():
            user = await users_repo.get(conn, caller.user_id, for_update=True)
            if user is None:
                raise not_found()
            profile = await users_repo.update_profile(conn, caller.user_id, changes)
            if changes:
                await emit(
                    conn,
                    make_event(
                        EventType.USER_UPDATED,
                        caller.user_id,
                        {"changed": sorted(changes), "profile": {k: changes[k] for k in PUBLIC_FIELDS if k in changes}},
                        source="auth_service",
                    ),
                )
    return dict(profile)


@router.delete("/users/me", status_code=204)
async def delete_me(request: Request, caller: CurrentUser = Depends(current_account)):
    """Deletes the account, its profile, codes, identities and refresh tokens (so no token can be
    refreshed), and publishes user.deleted so every service erases its data. Access tokens
    already issued stay valid until they expire (at most ACCESS_TOKEN_TTL_SECONDS)."""
    auth = auth_of(request)
    async with auth.pool.acquire() as conn:
        async with conn.transaction():
            deleted = await users_repo.delete(conn, caller.user_id)
            if deleted is None:
                raise not_found()
            await emit(
                conn,
                make_event(EventType.USER_DELETED, caller.user_id, {"was_guest": bool(deleted["temporary_account"])}, source="auth_service"),
            )
    return Response(status_code=204)
