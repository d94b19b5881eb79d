"""Chat and Content over HTTP, with the caller's token (services never read each other's databases)."""

from __future__ import annotations

import logging

import httpx

from community_service import errors
from shared.errors import APIError

log = logging.getLogger("community_service.upstream")


class Upstreams:
    def __init__(self, chat_url: str, content_url: str, timeout: float, auth_url: str | None = None):
        self.chat = httpx.AsyncClient(base_url=chat_url.rstrip("/"), timeout=timeout)
        self.content = httpx.AsyncClient(base_url=content_url.rstrip("/"), timeout=timeout)
        self.auth = httpx.AsyncClient(base_url=auth_url.rstrip("/"), timeout=timeout) if auth_url else None

    async def _get(self, client: httpx.AsyncClient, path: str, token: str | None, **params) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            return await client.get(path, params=params or None, headers=headers)
        except httpx.HTTPError as exc:
            log.warning("upstream unreachable", extra={"path": path, "error": type(exc).__name__})
            raise errors.UPSTREAM_UNAVAILABLE() from exc

    async def conversation_messages(self, conversation_id: str, token: str, limit: int) -> dict:
        """The caller's conversation and its newest `limit` messages (chronological), from Chat;
        404 when Chat does not show it to this caller."""
        r = await self._get(self.chat, f"/conversations/{conversation_id}", token, limit=limit)
        if r.status_code in (404, 422):
            raise errors.CONVERSATION_NOT_FOUND()
        if r.status_code != 200:
            log.warning("chat answered %s", r.status_code)
            raise errors.UPSTREAM_UNAVAILABLE("Chat did not answer; try again shortly.")
        return r.json()

    async def open_conversation(self, token: str, message: str, character: str, series: str | None) -> dict:
        """A new chat conversation through Chat's /talk_with (the caller's token, so the caller's
        quota); Chat's own 4xx answers (402 quota, 429, ...) are passed on as they are."""
        body = {"message": message, "character": character, **({"series": series} if series else {})}
        try:
            r = await self.chat.post("/talk_with", json=body, headers={"Authorization": f"Bearer {token}"})
        except httpx.HTTPError as exc:
            log.warning("upstream unreachable", extra={"path": "/talk_with", "error": type(exc).__name__})
            raise errors.UPSTREAM_UNAVAILABLE() from exc
        if 400 <= r.status_code < 500 and r.status_code != 422:
            is_json = r.headers.get("content-type", "").startswith("application/json")
            detail = (r.json() if is_json else {}).get("detail")
            if isinstance(detail, dict) and "code" in detail:
                extra = {k: v for k, v in detail.items() if k not in ("code", "message")}
                headers = {"Retry-After": r.headers["retry-after"]} if "retry-after" in r.headers else None
                raise APIError(r.status_code, detail["code"], detail.get("message", ""), headers=headers, **extra)
        if r.status_code != 200:
            log.warning("chat answered %s", r.status_code)
            raise errors.UPSTREAM_UNAVAILABLE("Chat did not answer; try again shortly.")
        return r.json()

    async def title(self, kind: str, tmdb_id: int) -> dict:
        """A movie or series from Content; 404 TITLE_NOT_FOUND when it does not exist."""
        path = f"/resources/{'movies' if kind == 'movie' else 'series'}/{tmdb_id}"
        r = await self._get(self.content, path, None)
        if r.status_code == 404:
            raise errors.TITLE_NOT_FOUND()
        if r.status_code != 200:
            log.warning("content answered %s", r.status_code)
            raise errors.UPSTREAM_UNAVAILABLE("Content did not answer; try again shortly.")
        return r.json()

    async def content_character(self, character_id: str) -> dict | None:
        """A character from Content by the id in its key (`character:<id>`); None when Content
        has no such character."""
        r = await self._get(self.content, f"/resources/characters/{character_id}", None)
        if r.status_code in (404, 422):
            return None
        if r.status_code != 200:
            log.warning("content answered %s", r.status_code)
            raise errors.UPSTREAM_UNAVAILABLE("Content did not answer; try again shortly.")
        return r.json()

    async def apply_referral(self, token: str, code: str) -> dict:
        """Records a referral through Auth's own rules (`POST /referrals/apply` with the caller's
        token: once per user, verified accounts, within the window, never your own code). Auth's
        4xx answers are passed on as they are; the answer is the caller's referral info."""
        if self.auth is None:
            raise errors.UPSTREAM_UNAVAILABLE("Auth is not configured.")
        try:
            r = await self.auth.post(
                "/referrals/apply", json={"code": code}, headers={"Authorization": f"Bearer {token}"}
            )
        except httpx.HTTPError as exc:
            log.warning("upstream unreachable", extra={"path": "/referrals/apply", "error": type(exc).__name__})
            raise errors.UPSTREAM_UNAVAILABLE() from exc
        _pass_on_client_error(r)
        if r.status_code != 200:
            log.warning("auth answered %s", r.status_code)
            raise errors.UPSTREAM_UNAVAILABLE("Auth did not answer; try again shortly.")
        return r.json()

    async def close(self) -> None:
        await self.chat.aclose()
        await self.content.aclose()
        if self.auth is not None:
            await self.auth.aclose()


def _pass_on_client_error(r: httpx.Response) -> None:
    """Another service's 4xx in our envelope, as it was (its code, message, extra fields, Retry-After)."""
    if 400 <= r.status_code < 500:
        is_json = r.headers.get("content-type", "").startswith("application/json")
        detail = (r.json() if is_json else {}).get("detail")
        if isinstance(detail, dict) and "code" in detail:
            extra = {k: v for k, v in detail.items() if k not in ("code", "message")}
            headers = {"Retry-After": r.headers["retry-after"]} if "retry-after" in r.headers else None
            raise APIError(r.status_code, detail["code"], detail.get("message", ""), headers=headers, **extra)
