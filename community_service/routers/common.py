"""What every community router uses: the app's pool, moderator and upstream clients, the common
documented errors, list answers."""

from __future__ import annotations

from fastapi import Request, Response

from shared.errors import INVALID_TOKEN, VALIDATION_ERROR, documented
from shared.responses import json_response

AUTH_ERRORS = (INVALID_TOKEN, VALIDATION_ERROR)
DEFAULT_LIMIT = 20
MAX_LIMIT = 100


def responses(*codes):
    return documented(*AUTH_ERRORS, *codes)


def pool(request: Request):
    return request.app.state.db


def moderator(request: Request):
    return request.app.state.moderator


def feed_pages(request: Request):
    """The first pages of the public feeds kept by this process (feed_cache.py)."""
    return request.app.state.feed_pages


def upstreams(request: Request):
    return request.app.state.upstreams


def listing(name: str, items: list, next_cursor: str | None) -> Response:
    """A list page, serialized by orjson (FastAPI's encoder walk was most of a feed page's CPU)."""
    return json_response({name: items, "next_cursor": next_cursor})
