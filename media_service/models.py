"""The media service's answers (docs/media.md, shared/API.md "Media service")."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


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
