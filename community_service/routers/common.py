"""What every community router uses: the app's pool, moderator and upstream clients, the common
documented errors, list answers."""

from __future__ import annotations

from fastapi import Request

from shared.errors import INVALID_TOKEN, VALIDATION_ERROR, documented

AUTH_ERRORS = (INVALID_TOKEN, VALIDATION_ERROR)
DEFAULT_LIMIT = 20
MAX_LIMIT = 100


def responses(*codes):
    return documented(*AUTH_ERRORS, *codes)


def pool(request: Request):
    return request.app.state.db


def moderator(request: Request):
    return request.app.state.moderator


def upstreams(request: Request):
    return request.app.state.upstreams


def listing(name: str, items: list, next_cursor: str | None) -> dict:
    return {name: items, "next_cursor": next_cursor}
