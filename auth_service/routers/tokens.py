"""Refresh-token rotation and logout (auth_service.service.sessions)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from auth_service import errors
from auth_service.models import RefreshBody, TokenPair
from auth_service.routers.deps import auth_of, limited
from shared.errors import documented

router = APIRouter(tags=["tokens"])


@router.post(
    "/token/refresh",
    response_model=TokenPair,
    dependencies=[limited("refresh", "rate_limit_refresh_per_minute")],
    responses=documented(errors.INVALID_REFRESH_TOKEN, errors.REFRESH_TOKEN_EXPIRED, errors.REFRESH_TOKEN_REUSED),
)
async def refresh(body: RefreshBody, request: Request):
    """Trades a refresh token for a new pair. The old token is spent; presenting a spent token
    again means it leaked (or a client retried), so its whole family is revoked."""
    return await auth_of(request).refresh(body.refresh_token)


@router.post("/logout", status_code=204)
async def logout(body: RefreshBody, request: Request):
    """Ends the session the refresh token belongs to (its whole family). 204 also for an unknown
    or already revoked token: logging out twice is not an error."""
    await auth_of(request).logout(body.refresh_token)
    return Response(status_code=204)
