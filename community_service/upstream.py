"""Chat and Content over HTTP, with the caller's token (services never read each other's databases)."""

from __future__ import annotations

import logging

import httpx

from community_service import errors

log = logging.getLogger("community_service.upstream")


class Upstreams:
    def __init__(self, chat_url: str, content_url: str, timeout: float):
        self.chat = httpx.AsyncClient(base_url=chat_url.rstrip("/"), timeout=timeout)
        self.content = httpx.AsyncClient(base_url=content_url.rstrip("/"), timeout=timeout)

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

    async def close(self) -> None:
        await self.chat.aclose()
        await self.content.aclose()
