"""Operations: POST /admin/sync starts a TMDB/TVDB sync (service token, role `service`);
GET /admin/sync tells its state; POST /admin/reindex rebuilds the search index."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from content_service import errors
from shared.auth import CurrentUser, require_service
from shared.errors import documented

router = APIRouter(prefix="/admin", tags=["admin"])


class SyncRequest(BaseModel):
    """Optional: a targeted run over TMDB's search for these queries (instead of the popular
    and trending lists)."""

    queries: list[str] = Field(default_factory=list, max_length=50)


class SyncState(BaseModel, extra="allow"):
    """The runner's state (`running`, `current`, `checkpoint`, `last`, ...)."""

    running: bool


class SyncStarted(SyncState):
    started: bool


@router.post(
    "/sync",
    status_code=202,
    summary="Start a TMDB/TVDB sync (service token)",
    responses={
        202: {"model": SyncStarted, "description": "Started"},
        200: {"model": SyncStarted, "description": "A sync is already running: not started"},
        **documented(errors.SYNC_NOT_CONFIGURED),
    },
)
async def start_sync(request: Request, body: SyncRequest | None = None, caller: CurrentUser = Depends(require_service)):
    runner = getattr(request.app.state, "sync_runner", None)
    if runner is None:
        raise errors.SYNC_NOT_CONFIGURED()
    queries = [q.strip() for q in (body.queries if body else []) if q.strip()]
    started, status = runner.start(trigger=f"api:{caller.user_id}", queries=queries or None)
    return JSONResponse({"started": started, **status}, status_code=202 if started else 200)


@router.get("/sync", summary="Sync state: running run, checkpoint, last result (service token)")
async def sync_status(request: Request, caller: CurrentUser = Depends(require_service)):
    runner = getattr(request.app.state, "sync_runner", None)
    catalog = request.app.state.catalog
    body = runner.status() if runner is not None else {"running": False, "configured": False}
    body["index"] = {
        "names": len(catalog.index),
        "entities": catalog.index.entity_count,
        "version": catalog.index_version,
        "stale": catalog.stale,
        "built_at": catalog.index_built_at,
        "build_seconds": catalog.last_build_seconds,
    }
    return body


@router.post("/reindex", status_code=202, summary="Rebuild the search index (service token)")
async def reindex(request: Request, caller: CurrentUser = Depends(require_service)):
    catalog = request.app.state.catalog
    await asyncio.to_thread(catalog.rebuild)
    return {"names": len(catalog.index), "version": catalog.index_version, "build_seconds": catalog.last_build_seconds}
