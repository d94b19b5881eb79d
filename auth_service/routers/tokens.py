"""Refresh-token rotation and logout."""
from __future__ import annotations

import logging
import secrets

from fastapi import APIRouter, Request, Response

from auth_service.service import auth_of, hash_refresh_token, limited
from auth_service.models import RefreshBody, TokenPair
from auth_service.repositories import tokens as tokens_repo
from auth_service.repositories import users as users_repo
from shared.errors import APIError

log = logging.getLogger("auth_service.tokens")
router = APIRouter(tags=["tokens"])


def _refused(code: str, message: str) -> APIError:
    return APIError(401, code, message, headers={"WWW-Authenticate": "Bearer"})


@router.post("/token/refresh", response_model=TokenPair, dependencies=[limited("refresh", "rate_limit_refresh_per_minute")])
async def refresh(body: RefreshBody, request: Request):
    """Trades a refresh token for a new pair. The old token is spent; presenting a spent token
    again means it leaked (or a client retried), so its whole family is revoked."""
    auth = auth_of(request)
    token_hash = hash_refresh_token(body.refresh_token)
    new_refresh = secrets.token_urlsafe(48)
    reused = None
    async with auth.pool.acquire() as conn:
        # Happy path: one statement (spend, add the successor, read the user's current tier).
        user = await tokens_repo.rotate(conn, token_hash=token_hash, new_hash=hash_refresh_token(new_refresh), expires_at=auth.refresh_expiry())
        if user is not None:
            return auth.pair(user, new_refresh, user["family_id"])
        # Otherwise find out why, under the row lock, and revoke the family on reuse.
        async with conn.transaction():
            row = await tokens_repo.get_for_update(conn, token_hash)
            if row is None:
                raise _refused("INVALID_REFRESH_TOKEN", "This refresh token is not valid; sign in again.")
            if row["rotated_at"] is not None or row["revoked_at"] is not None:
                revoked = await tokens_repo.revoke_family(conn, row["family_id"])
                reused = (str(row["user_id"]), revoked)
            elif row["expired"]:
                raise _refused("REFRESH_TOKEN_EXPIRED", "This refresh token has expired; sign in again.")
            else:
                user = await users_repo.get(conn, row["user_id"])
                await tokens_repo.mark_rotated(conn, row["id"])
                pair = await auth.issue_pair(conn, user, family_id=row["family_id"])
    if reused is not None:
        log.warning("refresh token reuse: session revoked", extra={"user_id": reused[0], "tokens_revoked": reused[1]})
        raise _refused("REFRESH_TOKEN_REUSED", "This refresh token was already used; the session has been signed out for safety.")
    return pair


@router.post("/logout", status_code=204)
async def logout(body: RefreshBody, request: Request):
    """Ends the session the refresh token belongs to (its whole family). 204 also for an unknown
    or already revoked token: logging out twice is not an error."""
    auth = auth_of(request)
    async with auth.pool.acquire() as conn:
        async with conn.transaction():
            row = await tokens_repo.get_for_update(conn, hash_refresh_token(body.refresh_token))
            if row is not None:
                await tokens_repo.revoke_family(conn, row["family_id"])
    return Response(status_code=204)
