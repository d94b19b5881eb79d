"""The first page of each public story feed, kept encoded for a short time.

Every signed-in caller of `GET /stories?scope=public&sort=…` without a cursor or a search gets the
same stories; only `my_vote` differs. So the page's shared part is kept per (sort, limit) as JSON
bytes, each story's object left open before its `my_vote`, and a request adds only the caller's
votes (one indexed lookup) and joins the bytes: no feed query, no per-story dict or encoding.

Staleness: a page is served for at most `ttl` seconds (1 s by default) after it was read. A vote
moves a story's counters and hot value at once in the database and in the vote's own answer; the
feed shows it within the ttl (invalidating on every vote would empty the cache at the vote rates
this service is built for, and a feed's order and counts a second old are not a correctness
matter). Publication, deletion and moderators' removal clear this process's pages at once; other
processes (workers) drop theirs within the ttl, so removed content leaves every feed within it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import orjson


@dataclass(slots=True)
class CachedPage:
    expires: float
    ids: list  # the stories' ids, in order (for the caller's votes)
    items: list[bytes]  # each story's JSON object without its closing brace, ending `"my_vote":`
    tail: bytes  # `],"next_cursor":…}`


class FeedPages:
    def __init__(self, ttl: float = 1.0):
        self.ttl = ttl
        self._pages: dict[tuple[str, int], CachedPage] = {}
        self._refills: dict[tuple[str, int], asyncio.Lock] = {}

    def get(self, sort: str, limit: int) -> CachedPage | None:
        page = self._pages.get((sort, limit))
        if page is None or page.expires < time.monotonic():
            return None
        return page

    def refilling(self, sort: str, limit: int) -> asyncio.Lock:
        """Held while a page is read again: the requests that find it expired meanwhile wait for that
        one read instead of each running the feed query."""
        return self._refills.setdefault((sort, limit), asyncio.Lock())

    def put(self, sort: str, limit: int, ids: list, items: list[dict], next_cursor: str | None) -> CachedPage:
        """`items`: the stories as answered, without `my_vote`."""
        encoded = [orjson.dumps(item)[:-1] + b',"my_vote":' for item in items]
        tail = b'],"next_cursor":' + orjson.dumps(next_cursor) + b"}"
        page = CachedPage(time.monotonic() + self.ttl, ids, encoded, tail)
        self._pages[(sort, limit)] = page
        return page

    def clear(self) -> None:
        self._pages.clear()


_VOTE = {1: b"1}", -1: b"-1}", 0: b"0}"}


def render(page: CachedPage, mine: dict) -> bytes:
    """The page's JSON with the caller's votes (`mine`: story id → ±1) filled in."""
    parts = [item + _VOTE[mine.get(i, 0)] for i, item in zip(page.ids, page.items, strict=True)]
    return b'{"stories":[' + b",".join(parts) + page.tail
