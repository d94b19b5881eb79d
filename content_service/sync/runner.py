"""The TMDB (and TVDB) sync: discover -> title details with credits -> people with combined
credits -> index rebuild.

* Resumable: the plan (the discovered queue) and the position in it are checkpointed in the
  store's meta after every few items; a run that dies (deploy, crash) is continued by the next
  run instead of starting over.
* Incremental: a title or person fetched less than SYNC_DETAILS_MAX_AGE_SECONDS ago is skipped;
  TMDB answers are cached for 7 days, so a resumed run re-reads instead of re-fetching.
* One run at a time per process (an asyncio lock); `POST /admin/sync` and the schedule both go
  through `start()`.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import time
import uuid

from content_service.sync.mapping import merge_person, person_record, title_records
from content_service.sync.tmdb import TMDBClient, TMDBError, TMDBNotFound

log = logging.getLogger("content_service.sync")

CHECKPOINT = "sync:checkpoint"
LAST = "sync:last"
CHECKPOINT_EVERY = 5


class SyncRunner:
    def __init__(
        self,
        catalog,
        client_factory,
        *,
        popular_pages: int = 5,
        trending: bool = True,
        people_per_title: int = 5,
        max_age_seconds: float = 7 * 24 * 3600,
        tvdb_factory=None,
    ):
        self.catalog = catalog
        self.store = catalog.store
        self.client_factory = client_factory
        self.tvdb_factory = tvdb_factory
        self.popular_pages = popular_pages
        self.trending = trending
        self.people_per_title = people_per_title
        self.max_age = max_age_seconds
        self._lock = asyncio.Lock()
        self.task: asyncio.Task | None = None
        self.current: dict | None = None

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()

    def start(self, trigger: str = "manual", queries: list[str] | None = None) -> tuple[bool, dict]:
        """Start a run in the background; (started, status). With `queries`, a targeted run:
        TMDB's search/multi for each query instead of the popular and trending lists."""
        if self.running:
            return False, self.status()
        self.task = asyncio.create_task(self._guarded(trigger, queries), name="content-sync")
        return True, self.status()

    async def _guarded(self, trigger: str, queries: list[str] | None = None) -> dict | None:
        try:
            return await self.run(trigger, queries)
        except Exception as exc:  # the schedule goes on; the checkpoint keeps the progress
            log.exception("sync failed")
            await self._put_meta(
                LAST, {"status": "failed", "error": repr(exc)[:500], "finished_at": time.time(), "trigger": trigger}
            )
            return None

    def status(self) -> dict:
        return {
            "running": self.running,
            "current": self.current,
            "checkpoint": _brief_checkpoint(self.store.get_meta(CHECKPOINT)),
            "last": self.store.get_meta(LAST),
        }

    async def _put_meta(self, key, value):
        await asyncio.to_thread(self.store.put_meta, key, value)

    # ------------------------------------------------------------------ the run
    async def run(self, trigger: str = "manual", queries: list[str] | None = None) -> dict:
        async with self._lock:
            # one sync per store, across worker processes and instances sharing the mount
            lock = _ProcessLock(self.store.path / "sync.lock")
            if not lock.acquire():
                return {"status": "skipped", "reason": "another process is syncing"}
            client: TMDBClient = self.client_factory()
            try:
                return await self._run(client, trigger, queries)
            finally:
                self.current = None
                lock.release()
                await client.aclose()

    async def _run(self, client: TMDBClient, trigger: str, queries: list[str] | None = None) -> dict:
        started = time.time()
        cp = self.store.get_meta(CHECKPOINT)
        resumed = cp is not None
        if cp is None:
            cp = {
                "run_id": uuid.uuid4().hex,
                "started_at": started,
                "trigger": trigger,
                "phase": "discover",
                "queries": list(queries or []),
                "queue": [],
                "pos": 0,
                "people": [],
                "ppos": 0,
                "stats": {"titles": 0, "skipped": 0, "people": 0, "characters": 0, "errors": 0},
            }
        self.current = {"run_id": cp["run_id"], "phase": cp["phase"], "resumed": resumed, "trigger": trigger}
        stats = cp["stats"]
        if cp["phase"] == "discover":
            cp["queue"], cp["people"] = await self._discover(client, cp.get("queries") or [])
            cp["phase"] = "details"
            await self._put_meta(CHECKPOINT, cp)
        if cp["phase"] == "details":
            self.current["phase"] = "details"
            people = list(cp["people"])
            seen_people = set(people)
            queue = cp["queue"]
            while cp["pos"] < len(queue):
                kind, tid = queue[cp["pos"]]
                try:
                    found = await self._title(client, kind, int(tid), stats)
                except TMDBNotFound:
                    found = []
                except TMDBError as exc:
                    if exc.status in (0, 429) or exc.status >= 500:
                        await self._put_meta(CHECKPOINT, cp)  # give up for now, resume later
                        raise
                    stats["errors"] += 1
                    found = []
                for pid in found:
                    if pid not in seen_people:
                        seen_people.add(pid)
                        people.append(pid)
                cp["pos"] += 1
                cp["people"] = people
                self.current["done"] = cp["pos"]
                self.current["total"] = len(queue)
                if cp["pos"] % CHECKPOINT_EVERY == 0:
                    await self._put_meta(CHECKPOINT, cp)
            cp["phase"] = "people"
            await self._put_meta(CHECKPOINT, cp)
        if cp["phase"] == "people":
            self.current["phase"] = "people"
            while cp["ppos"] < len(cp["people"]):
                pid = cp["people"][cp["ppos"]]
                try:
                    await self._person(client, int(pid), stats)
                except TMDBNotFound:
                    pass
                except TMDBError as exc:
                    if exc.status in (0, 429) or exc.status >= 500:
                        await self._put_meta(CHECKPOINT, cp)
                        raise
                    stats["errors"] += 1
                cp["ppos"] += 1
                if cp["ppos"] % CHECKPOINT_EVERY == 0:
                    await self._put_meta(CHECKPOINT, cp)
            cp["phase"] = "tvdb"
            await self._put_meta(CHECKPOINT, cp)
        if cp["phase"] == "tvdb":
            if self.tvdb_factory is not None:
                self.current["phase"] = "tvdb"
                stats["tvdb"] = await self._tvdb(cp)
            cp["phase"] = "index"
            await self._put_meta(CHECKPOINT, cp)
        self.current["phase"] = "index"
        if self.catalog.stale:
            await asyncio.to_thread(self.catalog.rebuild)
        result = {
            "status": "ok",
            "run_id": cp["run_id"],
            "trigger": cp.get("trigger", trigger),
            "resumed": resumed,
            "started_at": cp["started_at"],
            "finished_at": time.time(),
            "queued": len(cp["queue"]),
            "stats": stats,
            "tmdb": {"requests": client.requests, "cache_hits": client.cache_hits, "throttled": client.throttled},
            "index": {"names": len(self.catalog.index), "version": self.catalog.index_version},
        }
        await asyncio.to_thread(self.store.delete_meta, CHECKPOINT)
        await self._put_meta(LAST, result)
        log.info("sync finished", extra={k: v for k, v in result.items() if k != "stats"})
        return result

    async def _discover(self, client: TMDBClient, queries: list[str]) -> tuple[list, list]:
        queue: list[list] = []
        seen = set()
        people: list[int] = []

        def add(kind, tid):
            if (kind, tid) not in seen:
                seen.add((kind, tid))
                queue.append([kind, tid])

        if queries:
            for q in queries:
                body = await client.get("search/multi", {"query": q, "page": 1}, cache=False)
                for item in body.get("results") or []:
                    mt = item.get("media_type")
                    if mt in ("movie", "tv"):
                        add(mt, int(item["id"]))
                    elif mt == "person" and int(item["id"]) not in people:
                        people.append(int(item["id"]))
            return queue, people

        for kind in ("movie", "tv"):
            async for _, body in client.pages(f"{kind}/popular", max_pages=self.popular_pages):
                for item in body.get("results") or []:
                    add(kind, int(item["id"]))
        if self.trending:
            async for _, body in client.pages("trending/all/week", max_pages=2):
                for item in body.get("results") or []:
                    mt = item.get("media_type")
                    if mt in ("movie", "tv"):
                        add(mt, int(item["id"]))
                    elif mt == "person" and int(item["id"]) not in people:
                        people.append(int(item["id"]))
        return queue, people

    def _fresh(self, rec: dict | None) -> bool:
        return bool(rec) and not rec.get("stub") and time.time() - float(rec.get("fetched_at") or 0) < self.max_age

    async def _title(self, client: TMDBClient, kind: str, tid: int, stats: dict) -> list[int]:
        key = f"{kind}:{tid}"
        old = await asyncio.to_thread(self.store.get_entity, key)
        if self._fresh(old):
            stats["skipped"] += 1
            return []
        append = "aggregate_credits" if kind == "tv" else "credits"
        body = await client.get(f"{kind}/{tid}", {"append_to_response": append})
        recs = title_records(kind, body)
        title, rest = recs[0], recs[1:]
        chars = [r for r in rest if r["type"] == "character"]
        persons = [r for r in rest if r["type"] == "person"]
        stale_chars = {c["character"] for c in (old or {}).get("cast") or []} - {c["key"] for c in chars}
        await asyncio.to_thread(self._write_title, title, chars, persons, stale_chars)
        stats["titles"] += 1
        stats["characters"] += len(chars)
        top = sorted({(c["order"], int(c["person"].split(":")[1])) for c in title["cast"] if c.get("person")})
        return [pid for _, pid in top[: self.people_per_title]]

    def _write_title(self, title, chars, persons, stale_chars):
        existing = self.store.get_entities([p["key"] for p in persons])
        merged: dict[str, dict] = {}
        for p in persons:
            merged[p["key"]] = merge_person(merged.get(p["key"]) or existing.get(p["key"]), p)
        self.store.put_entities([title, *chars, *merged.values()])
        if stale_chars:
            self.store.delete_entities(stale_chars)

    async def _person(self, client: TMDBClient, pid: int, stats: dict) -> None:
        key = f"person:{pid}"
        old = await asyncio.to_thread(self.store.get_entity, key)
        if self._fresh(old):
            stats["skipped"] += 1
            return
        body = await client.get(f"person/{pid}")
        credits = await client.get(f"person/{pid}/combined_credits")
        rec = merge_person(old, person_record(body, credits))
        await asyncio.to_thread(self.store.put_entities, [rec])
        stats["people"] += 1

    async def _tvdb(self, cp: dict) -> dict:
        """Enrich the run's series with TVDB ids and aliases (extra names to search by)."""
        out = {"matched": 0, "aliases": 0}
        tvdb = self.tvdb_factory()
        try:
            for kind, tid in cp["queue"]:
                if kind != "tv":
                    continue
                rec = await asyncio.to_thread(self.store.get_entity, f"tv:{tid}")
                if rec is None or rec.get("tvdb_id"):
                    continue
                match = await tvdb.find_series(rec["name"], rec.get("year"))
                if match is None:
                    continue
                rec["tvdb_id"] = match["tvdb_id"]
                aliases = [a for a in match.get("aliases") or [] if a and a != rec["name"]]
                if aliases:
                    rec["aliases"] = sorted(set(rec.get("aliases") or []) | set(aliases))[:20]
                    out["aliases"] += len(aliases)
                await asyncio.to_thread(self.store.put_entities, [rec])
                out["matched"] += 1
        finally:
            await tvdb.aclose()
        return out


class _ProcessLock:
    """An exclusive, non-blocking flock on a file next to the store."""

    def __init__(self, path):
        self.path = path
        self.fd = None

    def acquire(self) -> bool:
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            os.close(self.fd)
            self.fd = None
            return False

    def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def _brief_checkpoint(cp: dict | None) -> dict | None:
    if cp is None:
        return None
    return {
        "run_id": cp.get("run_id"),
        "phase": cp.get("phase"),
        "pos": cp.get("pos"),
        "queued": len(cp.get("queue") or []),
        "people_done": cp.get("ppos"),
        "people": len(cp.get("people") or []),
    }


async def refresh_loop(catalog, interval: float) -> None:
    """Pick up snapshots other processes build (several workers or instances on one store)."""
    while True:
        await asyncio.sleep(interval)
        try:
            await asyncio.to_thread(catalog.refresh)
        except Exception:
            log.exception("index refresh failed")


async def schedule_loop(runner: SyncRunner, interval: float) -> None:
    """Start a run every `interval` seconds (skipped while one is running)."""
    while True:
        await asyncio.sleep(interval)
        started, _ = runner.start("schedule")
        if started:
            await asyncio.shield(runner.task)
