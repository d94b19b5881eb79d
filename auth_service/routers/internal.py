"""Routes for the other services (service tokens only): whether a token's subject is a user Auth
has (shared.known_users asks once per id it has not seen)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Request

from auth_service import errors
from auth_service.models import UserExistence
from auth_service.routers.deps import auth_of
from shared.auth import require_service
from shared.errors import documented

router = APIRouter(tags=["internal"], dependencies=[Depends(require_service)])


@router.get("/internal/users/{user_id}", response_model=UserExistence, responses=documented(errors.NO_SUCH_USER))
async def user_existence(user_id: uuid.UUID, request: Request):
    return await auth_of(request).user_existence(str(user_id))
