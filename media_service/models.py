"""The media service's answers (docs/media.md, shared/API.md "Media service")."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ImageOut(BaseModel):
    id: str
    url: str
    thumbnail_url: str | None
    width: int | None
    height: int | None
    mime: str
    bytes: int
    purpose: str | None
    provider: str | None = None
    model: str | None = None
    prompt: str | None = None
    created_at: datetime


class ImageList(BaseModel):
    images: list[ImageOut]
    next_cursor: str | None


class AudioOut(BaseModel):
    id: str
    url: str
    mime: str
    bytes: int
    duration_ms: int | None
    created_at: datetime


AspectRatio = Literal["1:1", "3:4", "4:3", "9:16", "16:9"]
ImageProviderName = Literal["imagen", "gemini", "replicate", "openai"]


# PostgreSQL text (and JSONB) cannot hold U+0000: the schema says so, rather than a late 422.
NO_NUL = r"^[^\x00]*$"


class GenerateRequest(BaseModel):
    prompt: str = Field(min_length=1, max_length=1000, pattern=r"^[^\x00]*\S[^\x00]*$")
    style: str | None = Field(None, max_length=200, pattern=NO_NUL)
    aspect_ratio: AspectRatio = "1:1"
    character: str | None = Field(None, max_length=200, pattern=NO_NUL)
    series: str | None = Field(None, max_length=200, pattern=NO_NUL)
    count: int = Field(1, ge=1, le=4)
    # Tried first when configured; the others follow as fallbacks.
    provider: ImageProviderName | None = None


class GenerateOut(BaseModel):
    images: list[ImageOut]
    remaining_quota: int  # image_gen left this period; -1: unlimited


class JobAccepted(BaseModel):
    job_id: str
    status: Literal["queued", "running", "succeeded", "failed"]


class JobOut(BaseModel):
    job_id: str
    status: Literal["queued", "running", "succeeded", "failed"]
    images: list[ImageOut] | None = None
    error: dict[str, Any] | None = None  # the error envelope's detail: {code, message, ...}
    created_at: datetime


class RecognizeByImage(BaseModel):
    """POST /images/recognize with JSON: one of the caller's images."""

    model_config = ConfigDict(extra="forbid")

    image_id: str = Field(..., min_length=1, max_length=64)


class RecognitionMatch(BaseModel):
    type: str  # Content's entity type: movie, tv, character
    id: str  # Content's id (GET /resources/...), e.g. "movie:603"
    name: str


class RecognitionOut(BaseModel):
    description: str
    tags: list[str]
    matches: list[RecognitionMatch]
    # False when the Content service did not answer every search: the matches may be incomplete.
    matches_available: bool
    model: str  # the vision model that answered
    # True: the caller recognised these exact bytes before (same model and prompts); the stored
    # result was returned without a model call or a quota charge. Matches are searched afresh.
    cached: bool
