"""Image generation: `POST /images/generate` (sync, or a job with `Prefer: respond-async`) and
`GET /images/jobs/{job_id}`."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse

from media_service import errors
from media_service.generation import GenerationService
from media_service.models import GenerateOut, GenerateRequest, JobAccepted, JobOut
from shared.auth import CurrentUser, get_current_user
from shared.errors import documented

router = APIRouter(tags=["generation"])


def generation(request: Request) -> GenerationService:
    return request.app.state.generation


def wants_async(prefer: str | None) -> bool:
    """RFC 7240: `Prefer: respond-async` (among other preferences, any case)."""
    return bool(prefer) and any(p.split(";")[0].strip().lower() == "respond-async" for p in prefer.split(","))


@router.post(
    "/images/generate",
    status_code=201,
    response_model=GenerateOut,
    responses={202: {"model": JobAccepted, "description": "With `Prefer: respond-async`: the job, to poll"}}
    | documented(
        errors.INVALID_TOKEN,
        errors.INSUFFICIENT_TIER,
        errors.INSUFFICIENT_QUOTA,
        errors.PROMPT_REJECTED,
        errors.VALIDATION_ERROR,
        errors.MODERATION_UNAVAILABLE,
        errors.PROVIDER_UNAVAILABLE,
        errors.STORAGE_UNAVAILABLE,
    ),
)
async def generate(
    body: GenerateRequest,
    request: Request,
    prefer: str | None = Header(None, description="`respond-async`: answer 202 with a job instead of waiting"),
    user: CurrentUser = Depends(get_current_user),
):
    """Generate 1-4 images (Pro: 5 a month; Max: unlimited; Free: 402). The prompt passes moderation
    first; providers are tried in order (`provider` first), the quota charged for images stored."""
    service = generation(request)
    values = body.model_dump()
    if wants_async(prefer):
        job = await service.submit(user, values)
        return JSONResponse(
            JobAccepted(**job).model_dump(), status_code=202, headers={"Preference-Applied": "respond-async"}
        )
    return await service.generate(user, values)


@router.get(
    "/images/jobs/{job_id}", response_model=JobOut, responses=documented(errors.INVALID_TOKEN, errors.JOB_NOT_FOUND)
)
async def get_job(job_id: str, request: Request, user: CurrentUser = Depends(get_current_user)):
    """One of the caller's generation jobs; another user's answers 404."""
    return await generation(request).get_job(user.user_id, job_id)
