"""Known users: the user ids this process has seen Auth confirm, so a validly signed token whose
user Auth never had (a database restored from before the sign-up, a token minted with a leaked
secret for a made-up id) is refused with 401 `USER_NOT_FOUND` instead of creating rows.

`shared.auth.authenticate` asks `await known_users.check(user_id)` after the signature and the
tombstones. A hit is a dict lookup (no I/O). A miss asks Auth once over HTTP
(`GET /internal/users/{id}` with a service token, a primary-key read there); concurrent misses
for the same id share that one call. Answers are cached:

- known (users and guests): for as long as the process lives, in a bounded LRU (`max_known`,
  100k ids by default); a deletion is the tombstones' business, checked before this;
- unknown: for `unknown_ttl_seconds` (5 s) only, so a flood of made-up ids costs Auth one read per
  id per few seconds, and nothing stays refused for long if Auth's answer was wrong;
- Auth unreachable or failing: the request is served (fail-open, with a warning), and the miss is
  not cached, so the next request asks again after `retry_seconds`. Refusing every new user's
  requests because Auth is down would be a fleet-wide outage to guard against a case that only
  exists after Auth lost users (docs/auth.md, "Never-created users").

`user.created` events pre-warm the cache (the tombstones' per-process listener hears them), so a
user who signs up is usually known before their first request elsewhere. A user created a
millisecond ago is accepted anyway: Auth commits the row before it issues the token, so the
lookup finds it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict

import httpx

from shared.auth import mint_service_token

log = logging.getLogger("shared.known_users")

KNOWN, UNKNOWN, DELETED = "known", "unknown", "deleted"


class AuthUnavailable(Exception):
    pass


class KnownUsers:
    def __init__(
        self,
        *,
        auth_url: str,
        secret: str,
        service: str,
        max_known: int = 100_000,
        unknown_ttl_seconds: float = 5.0,
        retry_seconds: float = 1.0,
        timeout_seconds: float = 3.0,
    ):
        self.auth_url = auth_url.rstrip("/")
        self.secret = secret
        self.service = service
        self.max_known = max_known
        self.unknown_ttl = unknown_ttl_seconds
        self.retry_seconds = retry_seconds
        self.timeout = timeout_seconds
        self._known: OrderedDict[str, None] = OrderedDict()
        self._unknown: dict[str, float] = {}  # user id -> monotonic time until which it is refused
        self._inflight: dict[str, asyncio.Future[str | None]] = {}
        self._client: httpx.AsyncClient | None = None
        self._token: tuple[str, float] | None = None
        self._auth_down_until = 0.0
        self.lookups = 0  # calls made to Auth (tests and the benchmark read it)

    def __len__(self) -> int:
        return len(self._known)

    def __contains__(self, user_id: object) -> bool:
        return user_id in self._known

    def add(self, user_id: str) -> None:
        known = self._known
        if user_id in known:
            known.move_to_end(user_id)
            return
        known[user_id] = None
        self._unknown.pop(user_id, None)
        if len(known) > self.max_known:
            known.popitem(last=False)

    def forget(self, user_id: str) -> None:
        self._known.pop(user_id, None)

    async def check(self, user_id: str) -> str:
        """KNOWN, UNKNOWN or DELETED; KNOWN also when Auth cannot be asked (fail-open)."""
        known = self._known
        if user_id in known:
            # The LRU's recency: moving a hit to the end is O(1) and keeps active users cached.
            known.move_to_end(user_id)
            return KNOWN
        until = self._unknown.get(user_id)
        if until is not None:
            if until > time.monotonic():
                return UNKNOWN
            del self._unknown[user_id]
        if time.monotonic() < self._auth_down_until:
            return KNOWN
        pending = self._inflight.get(user_id)
        if pending is None:
            pending = asyncio.get_running_loop().create_future()
            self._inflight[user_id] = pending
            try:
                answer = await self._ask(user_id)
            except AuthUnavailable as exc:
                self._auth_down_until = time.monotonic() + self.retry_seconds
                log.warning(
                    "auth unreachable: a token of a user not known here is served (fail-open)",
                    extra={"user_id": user_id, "error": str(exc)},
                )
                answer = KNOWN
            except BaseException:
                # This caller went away (cancelled) mid-call: the others ask again themselves.
                pending.set_result(None)
                raise
            finally:
                self._inflight.pop(user_id, None)
            if not pending.done():
                pending.set_result(answer)
            return answer
        # Shielded: a caller that goes away must not cancel the answer others wait for.
        answer = await asyncio.shield(pending)
        return answer if answer is not None else await self.check(user_id)

    def _service_token(self) -> str:
        now = time.time()
        if self._token is None or self._token[1] - now < 60:
            expires_in = 300
            self._token = (mint_service_token(self.secret, self.service, expires_in=expires_in), now + expires_in)
        return self._token[0]

    async def _ask(self, user_id: str) -> str:
        if self._client is None:
            self._client = httpx.AsyncClient(base_url=self.auth_url, timeout=self.timeout)
        self.lookups += 1
        try:
            response = await self._client.get(
                f"/internal/users/{user_id}", headers={"Authorization": f"Bearer {self._service_token()}"}
            )
        except httpx.HTTPError as exc:
            raise AuthUnavailable(type(exc).__name__) from exc
        if response.status_code == 200:
            self.add(user_id)
            return KNOWN
        if response.status_code == 404:
            detail = _detail(response)
            if detail.get("deleted") is True:
                return DELETED
            self._unknown[user_id] = time.monotonic() + self.unknown_ttl
            if len(self._unknown) > self.max_known:
                now = time.monotonic()
                self._unknown = {u: t for u, t in self._unknown.items() if t > now}
            return UNKNOWN
        raise AuthUnavailable(f"auth answered {response.status_code}")

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _detail(response: httpx.Response) -> dict:
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        return {}
    return detail if isinstance(detail, dict) else {}


__all__ = ["DELETED", "KNOWN", "UNKNOWN", "AuthUnavailable", "KnownUsers"]
