"""Stories: the wizard, versions, publication, feeds, sharing, export."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import StreamingResponse

from community_service import errors, generation
from community_service import service_stories as stories
from community_service.cursors import CursorQuery
from community_service.models import (
    CharactersStep,
    GenerateRequest,
    PublishRequest,
    ScenarioStep,
    StoryCreate,
    StoryEdit,
    UniverseStep,
)
from community_service.routers.common import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    feed_pages,
    listing,
    moderator,
    pool,
    responses,
    upstreams,
)
from shared.auth import CurrentUser, bearer_token, get_current_user
from shared.errors import INSUFFICIENT_QUOTA
from shared.openapi import STORABLE_PATTERN

router = APIRouter(tags=["stories"])
StoryId = Path(max_length=64)


def if_match_parameter(*, required: bool) -> dict:
    """The If-Match header as the document states it. The routes read it themselves (parse_if_match): a
    missing one on PATCH is 428 PRECONDITION_REQUIRED (RFC 6585) and a malformed one 400 INVALID_IF_MATCH,
    not validation errors."""
    if required:
        description = 'The version edited (`"3"`, the story\'s ETag): 428 without it, 412 when stale.'
    else:
        description = 'The version the step applies to (`"3"`): 412 when stale; without it, the latest.'
    return {
        "name": "If-Match",
        "in": "header",
        "required": required,
        "description": description,
        "schema": {"type": "string", "maxLength": stories.IF_MATCH_MAX_LENGTH, "pattern": stories.IF_MATCH_PATTERN},
    }


STEP_ERRORS = (errors.STORY_NOT_FOUND, errors.NOT_A_DRAFT, errors.VERSION_CONFLICT, errors.INVALID_IF_MATCH)


def _etag(response: Response, story: dict) -> dict:
    response.headers["ETag"] = f'"{story["version"]}"'
    return story


@router.post(
    "/stories", status_code=201, responses=responses(errors.CONVERSATION_NOT_FOUND, errors.UPSTREAM_UNAVAILABLE)
)
async def create_story(
    body: StoryCreate, request: Request, response: Response, user: CurrentUser = Depends(get_current_user)
):
    """A new draft, empty or with a chat conversation's messages as source material (read from Chat
    with the caller's token: only the caller's own conversations)."""
    story = await stories.create_draft(
        pool(request),
        upstreams(request),
        user,
        bearer_token(request),
        body.from_conversation_id,
        request.app.state.settings.import_max_messages,
    )
    return _etag(response, story)


@router.put(
    "/stories/{story_id}/universe",
    responses=responses(*STEP_ERRORS, errors.TITLE_NOT_FOUND, errors.UNIVERSE_NOT_FOUND, errors.UPSTREAM_UNAVAILABLE),
    openapi_extra={"parameters": [if_match_parameter(required=False)]},
)
async def set_universe(
    body: UniverseStep,
    request: Request,
    response: Response,
    story_id: str = StoryId,
    user: CurrentUser = Depends(get_current_user),
):
    """Step 1: a TMDB title (checked against Content), a user-made universe, or a custom one."""
    story = await stories.set_universe(
        pool(request),
        upstreams(request),
        user,
        story_id,
        stories.parse_if_match(request.headers.get("If-Match"), required=False),
        body.model_dump(),
    )
    return _etag(response, story)


@router.put(
    "/stories/{story_id}/characters",
    responses=responses(*STEP_ERRORS, errors.TOO_MANY_CHARACTERS, errors.CHARACTER_NOT_FOUND),
    openapi_extra={"parameters": [if_match_parameter(required=False)]},
)
async def set_characters(
    body: CharactersStep,
    request: Request,
    response: Response,
    story_id: str = StoryId,
    user: CurrentUser = Depends(get_current_user),
):
    """Step 2: 1 to 5 characters, by name and series or as custom characters."""
    story = await stories.set_characters(
        pool(request),
        user,
        story_id,
        stories.parse_if_match(request.headers.get("If-Match"), required=False),
        [c.model_dump() for c in body.characters],
    )
    return _etag(response, story)


@router.put(
    "/stories/{story_id}/scenario",
    responses=responses(*STEP_ERRORS, errors.SCENARIO_NOT_FOUND),
    openapi_extra={"parameters": [if_match_parameter(required=False)]},
)
async def set_scenario(
    body: ScenarioStep,
    request: Request,
    response: Response,
    story_id: str = StoryId,
    user: CurrentUser = Depends(get_current_user),
):
    """Step 3: setting, tone, themes, optionally from the scenario library."""
    story = await stories.set_scenario(
        pool(request),
        user,
        story_id,
        stories.parse_if_match(request.headers.get("If-Match"), required=False),
        body.model_dump(),
    )
    return _etag(response, story)


@router.post(
    "/stories/{story_id}/generate",
    responses=responses(errors.STORY_NOT_FOUND, errors.STORY_INCOMPLETE, INSUFFICIENT_QUOTA, errors.LLM_UNAVAILABLE)
    | {200: {"content": {"text/event-stream": {}}, "description": "token…, then done or error"}},
)
async def generate_story(
    body: GenerateRequest, request: Request, story_id: str = StoryId, user: CurrentUser = Depends(get_current_user)
):
    """Step 4: the story written by a model, streamed (server-sent events in chat's frames); the
    `story` quota is reserved before, settled when the text is saved, released on failure."""
    state = request.app.state
    row, spec, reservation = await generation.prepare(pool(request), state.llm, state.quota, user, story_id)
    events = generation.run(pool(request), state.llm, user, row, spec, reservation, body.length, body.instructions)
    return StreamingResponse(
        events, media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )


@router.patch(
    "/stories/{story_id}",
    responses=responses(
        errors.STORY_NOT_FOUND,
        errors.VERSION_CONFLICT,
        errors.PRECONDITION_REQUIRED,
        errors.INVALID_IF_MATCH,
        errors.CONTENT_FLAGGED,
        errors.MODERATION_UNAVAILABLE,
    ),
    openapi_extra={"parameters": [if_match_parameter(required=True)]},
)
async def edit_story(
    body: StoryEdit,
    request: Request,
    response: Response,
    story_id: str = StoryId,
    user: CurrentUser = Depends(get_current_user),
):
    """A new version; `If-Match: "<version>"` is required (428 without, 412 when stale)."""
    expected = stories.parse_if_match(request.headers.get("If-Match"), required=True)
    story = await stories.edit(
        pool(request), moderator(request), user, story_id, expected, body.model_dump(exclude_none=True)
    )
    return _etag(response, story)


@router.get("/stories/{story_id}/versions", responses=responses(errors.STORY_NOT_FOUND))
async def story_versions(request: Request, story_id: str = StoryId, user: CurrentUser = Depends(get_current_user)):
    return {"versions": await stories.versions(pool(request), user, story_id), "next_cursor": None}


@router.post(
    "/stories/{story_id}/publish",
    responses=responses(
        errors.STORY_NOT_FOUND,
        errors.STORY_INCOMPLETE,
        errors.CONTENT_FLAGGED,
        errors.MODERATION_UNAVAILABLE,
        errors.VERSION_CONFLICT,
    ),
)
async def publish_story(
    body: PublishRequest,
    request: Request,
    response: Response,
    story_id: str = StoryId,
    user: CurrentUser = Depends(get_current_user),
):
    """Publication after moderation (OpenAI's moderation endpoint): 422 CONTENT_FLAGGED when flagged."""
    story = await stories.publish(
        pool(request), moderator(request), user, story_id, body.visibility, request.app.state.engagement
    )
    feed_pages(request).clear()
    return _etag(response, story)


@router.get("/stories", responses=responses(errors.INVALID_CURSOR))
async def list_stories(
    request: Request,
    scope: Literal["public", "mine"] = "public",
    sort: Literal["hot", "new", "top"] = "hot",
    q: str | None = Query(None, min_length=1, max_length=100, pattern=STORABLE_PATTERN),
    cursor: str | None = CursorQuery,
    limit: int = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT),
    user: CurrentUser = Depends(get_current_user),
):
    """`public`: published public stories by hot, new or top; `mine`: the caller's, recently changed first."""
    if scope == "public" and cursor is None and q is None:
        page = await stories.public_first_page(pool(request), feed_pages(request), user, sort, limit)
        return Response(page, media_type="application/json")
    items, next_cursor = await stories.list_stories(
        pool(request), user, scope=scope, sort=sort, q=q, cursor=cursor, limit=limit
    )
    return listing("stories", items, next_cursor)


@router.get("/stories/{story_id}", responses=responses(errors.STORY_NOT_FOUND))
async def get_story(
    request: Request, response: Response, story_id: str = StoryId, user: CurrentUser = Depends(get_current_user)
):
    """The caller's own story (any status), or a published one; the version is the ETag."""
    return _etag(response, await stories.get_story(pool(request), user, story_id))


@router.delete("/stories/{story_id}", status_code=204, responses=responses(errors.STORY_NOT_FOUND))
async def delete_story(request: Request, story_id: str = StoryId, user: CurrentUser = Depends(get_current_user)):
    await stories.delete(pool(request), user, story_id)
    feed_pages(request).clear()
    return Response(status_code=204)


@router.get("/stories/{story_id}/export", responses=responses(errors.STORY_NOT_FOUND))
async def export_story(
    request: Request,
    story_id: str = StoryId,
    format: Literal["pdf", "txt", "md"] = "txt",
    user: CurrentUser = Depends(get_current_user),
):
    content, media_type, filename = await stories.export(pool(request), user, story_id, format)
    return Response(
        content, media_type=media_type, headers={"Content-Disposition": f'attachment; filename="{filename}"'}
    )


@router.post("/stories/{story_id}/share", responses=responses(errors.STORY_NOT_FOUND))
async def share_story(request: Request, story_id: str = StoryId, user: CurrentUser = Depends(get_current_user)):
    """A link anyone can read without a token (the same one each time), and social share URLs."""
    return await stories.share(pool(request), user, story_id, request.app.state.settings.public_base_url)


@router.get("/shared/stories/{token}", responses=responses(errors.SHARE_NOT_FOUND))
async def read_shared_story(request: Request, token: str = Path(min_length=8, max_length=64)):
    """A shared story, without a token; removed stories answer 404."""
    return await stories.read_shared(pool(request), token)
