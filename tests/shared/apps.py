"""A small app built with the shared factory, for testing shared/ itself."""

import asyncio
from pathlib import Path

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from shared.app import create_app
from shared.auth import CurrentUser, get_current_user, require_service, requires_tier
from shared.ratelimit import RateLimit
from shared.settings import ServiceSettings


class Item(BaseModel):
    name: str = Field(min_length=1, max_length=50)
    count: int


def build_probe_app(env: dict, **kwargs):
    router = APIRouter()

    @router.get("/me")
    async def me(user: CurrentUser = Depends(get_current_user)):
        return {"user_id": user.user_id, "email": user.email, "tier": user.tier, "role": user.role}

    @router.get("/pro-only")
    async def pro_only(user: CurrentUser = Depends(requires_tier(1))):
        return {"ok": True}

    @router.get("/internal")
    async def internal(user: CurrentUser = Depends(require_service)):
        return {"service": user.user_id}

    @router.post("/items", status_code=201)
    async def create_item(item: Item, user: CurrentUser = Depends(get_current_user)):
        return item.model_dump()

    @router.get("/limited", dependencies=[Depends(RateLimit(5, 60, scope="limited"))])
    async def limited():
        return {"ok": True}

    @router.get("/public")
    async def public():
        return {"ok": True}

    @router.get("/boom")
    async def boom():
        raise RuntimeError("internal detail that must not leak")

    @router.get("/db-now")
    async def db_now(request: Request):
        return {"now": str(await request.app.state.db.fetchval("SELECT now()"))}

    @router.get("/missing-file")
    async def missing_file():
        # An OSError that has nothing to do with the database (a file, a socket to elsewhere).
        return {"text": await asyncio.to_thread(Path("/nonexistent/scenextras-probe.txt").read_text)}

    settings = ServiceSettings(service_name="probe")
    return create_app(
        service="probe", settings=settings, routers=[router], legacy_prefixes=["/api/probe"], outbox=False, **kwargs
    )
