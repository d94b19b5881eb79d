"""Image generation: the rules of `POST /images/generate` and of its async jobs (docs/media.md
"Generation"). Providers are in providers.py, job SQL in repositories/jobs.py; images are stored
through MediaService's blob/row protocol (service.py), like uploads.

Order of a request, cheapest refusal first: tier (Free → 402), moderation (fails closed → 503;
flagged → 422), a configured provider (→ 503), then the `image_gen` quota is reserved (`count`
images), the providers are tried in order, the images stored; the reservation is settled for the
images stored and released when none was (or anything failed).

Async jobs (`Prefer: respond-async`): the quota is reserved in the request (a 402 comes at once),
the job row keeps the reservation id, a worker in this process runs it under a lease. Exactness
across a restart:
- a job finishes by writing its outcome (one transaction with its status), then settling or
  releasing its reservation, then marking it `settled`; a process that dies in between leaves an
  unsettled finished job, which the next scan settles (settle and release are idempotent);
- a job taken up again (queued, or running under an expired lease: its process died or stopped)
  gives its reservation back and reserves anew before calling a provider: the reservation may
  have expired meanwhile (the database gives expired ones back), and a fresh one keeps the charge
  exact either way. If the quota is gone by then (spent elsewhere), the job fails, uncharged.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import openai
from PIL import Image

from media_service import errors, imaging
from media_service.providers import Generated, ProviderChain, ProviderImage, ProvidersUnavailable
from media_service.repositories import jobs as jobs_repo
from media_service.service import Blob, MediaService, parse_id, prepare_image, thumbnail_blob
from media_service.settings import Settings
from shared.auth import TIER_FREE, CurrentUser
from shared.events import EventType, make_event
from shared.llm.moderation import ModerationUnavailable, moderate
from shared.periodic import Periodic
from shared.quota import InsufficientQuota, QuotaClient, Reservation
from shared.tasks import cancel_all_and_wait
from shared.tiers import UNLIMITED, TierResolver

log = logging.getLogger("media_service.generation")

QUOTA_TYPE = "image_gen"
JOB_CLAIM_BATCH = 8


def full_prompt(prompt: str, style: str | None, character: str | None, series: str | None) -> str:
    """The prompt sent to the provider: the user's, with the style and the character/series as context."""
    parts = [prompt.strip()]
    if style:
        parts.append(f"Style: {style.strip()}.")
    if character and series:
        parts.append(f"Featuring {character.strip()} from {series.strip()}, in the visual style of {series.strip()}.")
    elif character:
        parts.append(f"Featuring {character.strip()}.")
    elif series:
        parts.append(f"In the visual style of {series.strip()}.")
    return " ".join(parts)


def remaining_after(reservation, charged: int) -> int:
    """What the user has left once `charged` of the reservation is kept (-1: unlimited)."""
    if reservation.unlimited:
        return UNLIMITED
    return reservation.remaining + (reservation.amount - charged)


class GenerationService:
    def __init__(
        self,
        settings: Settings,
        db,
        media: MediaService,
        quota: QuotaClient,
        tiers: TierResolver,
        chain: ProviderChain,
        openai_client: openai.AsyncOpenAI | None,
    ):
        self.settings = settings
        self.db = db
        self.media = media
        self.quota = quota
        self.tiers = tiers
        self.chain = chain
        self.openai_client = openai_client
        self.slots = asyncio.Semaphore(JOB_CLAIM_BATCH)
        self._running: dict[uuid.UUID, asyncio.Task] = {}
        self._tasks: set[asyncio.Task] = set()
        self._scanner = Periodic(
            self.scan,
            self._next_wait,
            name="media-generation-jobs",
            log=log,
            failure="job scan failed; retrying next interval",
        )

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Take up jobs left queued or running (by a process that stopped), now and every scan."""
        self._scanner.start()

    async def close(self) -> None:
        await self._scanner.stop()
        running = list(self._running)
        await cancel_all_and_wait(list(self._running.values()))
        if running:
            # Their reservations stay held: whoever takes the jobs up next re-reserves (module doc).
            try:
                async with self.db.acquire() as conn:
                    await jobs_repo.drop_leases(conn, running)
            except Exception:
                log.warning("job leases not dropped; they expire", extra={"jobs": [str(j) for j in running]})
        await self.chain.close()
        if self.openai_client is not None:
            await self.openai_client.close()

    # ------------------------------------------------------------------ checks
    async def admit(self, user: CurrentUser, text: str, count: int) -> Reservation:
        """Tier, then moderation, then a provider to call: refusals that cost nothing come first.
        The quota is reserved while moderation runs (a paying user's prompt is moderated either
        way; the core database's round trip then costs the answer nothing) and given back if the
        prompt is refused, so the refusals' order is unchanged: tier, moderation, provider, quota."""
        tier = await self.tiers(user)
        if tier <= TIER_FREE:
            raise errors.INSUFFICIENT_TIER(
                "Image generation needs the Pro plan or higher.", required_tier=TIER_FREE + 1, current_tier=tier
            )
        reserving = asyncio.ensure_future(self.quota.reserve(user.user_id, QUOTA_TYPE, count))
        try:
            await self._screen(text)
        except BaseException:
            await asyncio.shield(self._give_back(reserving))
            raise
        return await reserving  # InsufficientQuota (402) only once the prompt passed

    async def _screen(self, text: str) -> None:
        try:
            verdict = await moderate(
                self.openai_client,
                text,
                self.settings.llm_moderation_model,
                self.settings.llm_moderation_timeout_seconds,
            )
        except ModerationUnavailable:
            raise errors.MODERATION_UNAVAILABLE() from None
        if verdict.flagged:
            raise errors.PROMPT_REJECTED(categories=verdict.categories)
        if not self.chain.providers:
            raise errors.PROVIDER_UNAVAILABLE("No image provider is configured on this server.", attempts=[])

    async def _give_back(self, reserving: asyncio.Future) -> None:
        """Release what `reserving` reserved, once it has answered (not cancelled midway: a
        reservation made but not known here would be held until it expires)."""
        try:
            reservation = await reserving
        except Exception:
            return  # nothing reserved (quota spent, or the core database away)
        try:
            await self.quota.release(reservation.reservation_id)
        except Exception:
            log.exception("quota release failed; the reservation expires on its own")

    # ------------------------------------------------------------------ sync
    async def generate(self, user: CurrentUser, request: dict[str, Any]) -> dict[str, Any]:
        text = full_prompt(request["prompt"], request.get("style"), request.get("character"), request.get("series"))
        reservation = await self.admit(user, text, request["count"])
        async with self.quota.settling(reservation):
            images = await self._produce(user.user_id, request, text, job_id=None)
            reservation.actual = len(images)
        return {"images": images, "remaining_quota": remaining_after(reservation, len(images))}

    async def _produce(self, user_id: str, request: dict[str, Any], text: str, job_id: str | None) -> list[dict]:
        """Providers in order, each one's images decoded before it counts as answered; then the
        images stored. Raises PROVIDER_UNAVAILABLE when no provider gave a usable image."""
        try:
            generated = await self.chain.generate(
                text,
                count=request["count"],
                aspect_ratio=request["aspect_ratio"],
                preferred=request.get("provider"),
                accept=self._decode,
            )
        except ProvidersUnavailable as exc:
            raise errors.PROVIDER_UNAVAILABLE(attempts=exc.attempts) from None
        return await self._store(user_id, generated, request["prompt"], job_id)

    async def _decode(self, images: list[ProviderImage]) -> list[tuple[Image.Image, Blob]]:
        """Each image decoded under the pixel limit and re-encoded like an upload (Pillow, in the
        CPU pool), side by side; one the provider sent broken is dropped. A PNG with nothing in it
        but its image is kept as sent (imaging.is_clean_png): re-encoding it would strip nothing
        and only change its compression. The thumbnail is made later, while the original is
        being stored (_store_one)."""
        s = self.settings

        async def one(raw: ProviderImage) -> tuple[Image.Image, Blob] | None:
            try:
                return await self.media._in_thread(
                    prepare_image, raw.data, max_pixels=s.media_image_max_pixels, keep_clean_png=True
                )
            except (imaging.Invalid, imaging.Unsupported) as exc:
                log.warning("provider sent an unusable image", extra={"error": str(exc)})
                return None

        return [p for p in await asyncio.gather(*(one(raw) for raw in images)) if p is not None]

    async def _store(self, user_id: str, generated: Generated, prompt: str, job_id: str | None) -> list[dict]:
        """The images stored side by side (blobs, then row and `image.generated` in one
        transaction). The caller charges for the images stored; if none could be, the first
        storage error is raised."""
        results = await asyncio.gather(
            *(self._store_one(user_id, image, generated, prompt, job_id) for image in generated.images),
            return_exceptions=True,
        )
        stored = [r for r in results if isinstance(r, dict)]
        failures = [r for r in results if isinstance(r, BaseException)]
        for failure in failures:
            if not isinstance(failure, errors.APIError):
                raise failure  # a bug, not storage being away
        if not stored and failures:
            raise failures[0]
        return stored

    async def _store_one(
        self,
        user_id: str,
        prepared: tuple[Image.Image, Blob],
        generated: Generated,
        prompt: str,
        job_id: str | None,
    ) -> dict:
        """One image: its thumbnail made in the CPU pool while the original is leased and written
        (MediaService._store's `thumbnail`), then the row and `image.generated`."""
        image, original = prepared
        original_name, data, mime = original
        making = asyncio.ensure_future(self.media._in_thread(thumbnail_blob, image, self.settings.media_thumbnail_size))
        media_id = uuid.uuid4()
        body = {
            "image_id": str(media_id),
            "provider": generated.provider,
            "model": generated.model,
            "prompt": prompt,
            "mime": mime,
            "bytes": len(data),
            "width": image.width,
            "height": image.height,
        }
        if job_id is not None:
            body["job_id"] = job_id
        try:
            # MediaService._store is the one blob/row protocol (leases, then blobs, then row + event).
            row = await self.media._store(
                [original],
                dict(
                    media_id=media_id,
                    user_id=user_id,
                    kind="image",
                    purpose=None,
                    blob_name=original_name,
                    thumbnail_name=None,  # the thumbnail's, once made
                    mime=mime,
                    size=len(data),
                    width=image.width,
                    height=image.height,
                    provider=generated.provider,
                    model=generated.model,
                    prompt=prompt,
                ),
                make_event(EventType.IMAGE_GENERATED, user_id, body),
                thumbnail=making,
            )
        finally:
            await cancel_all_and_wait([making])  # stopped early (storage failed): not left running
        return self.media.image_out(row)

    # ------------------------------------------------------------------ async jobs
    async def submit(self, user: CurrentUser, request: dict[str, Any]) -> dict[str, Any]:
        text = full_prompt(request["prompt"], request.get("style"), request.get("character"), request.get("series"))
        reservation = await self.admit(user, text, request["count"])
        job_id = uuid.uuid4()
        try:
            async with self.db.acquire() as conn:
                job = await jobs_repo.insert_job(
                    conn, job_id, user.user_id, {**request, "text": text}, reservation.reservation_id
                )
        except BaseException:
            await asyncio.shield(self.quota.release(reservation.reservation_id))
            raise
        self._scanner.wake()  # the scanner claims it at once
        return {"job_id": str(job["id"]), "status": job["status"]}

    async def get_job(self, user_id: str, job_id: str) -> dict[str, Any]:
        jid = parse_id(job_id, errors.JOB_NOT_FOUND)
        async with self.db.acquire() as conn:
            job = await jobs_repo.get_owned(conn, jid, user_id)
            if job is None:
                raise errors.JOB_NOT_FOUND()
            rows = await jobs_repo.images_of(conn, job["image_ids"], user_id) if job["image_ids"] else []
        out: dict[str, Any] = {"job_id": str(job["id"]), "status": job["status"], "created_at": job["created_at"]}
        if job["status"] == "succeeded":
            by_id = {r["id"]: r for r in rows}  # kept in the job's order; an image deleted since is left out
            out["images"] = [self.media.image_out(by_id[i]) for i in job["image_ids"] if i in by_id]
        if job["error"] is not None:
            out["error"] = job["error"]
        return out

    async def delete_user(self, conn, user_id: str) -> int:
        return await jobs_repo.delete_user(conn, user_id)

    def _next_wait(self) -> float:
        # While jobs run, leases are renewed at a third of their length.
        wait = self.settings.media_job_scan_seconds
        if self._running:
            wait = min(wait, self.settings.media_job_lease_seconds / 3)
        return wait

    async def scan(self) -> int:
        """Renew our leases, settle finished-but-unsettled jobs, claim runnable ones (as many as free slots)."""
        s = self.settings
        async with self.db.acquire() as conn:
            if self._running:
                await jobs_repo.renew_leases(conn, list(self._running), s.media_job_lease_seconds)
            unsettled = await jobs_repo.unsettled_finished(conn, JOB_CLAIM_BATCH * 4)
        for job in unsettled:
            if job["id"] not in self._running:
                await self._finish_reservation(job, charge=len(job["image_ids"]))
        free = JOB_CLAIM_BATCH - len(self._running)
        if free <= 0:
            return 0
        async with self.db.acquire() as conn:
            claimed = await jobs_repo.claim(conn, None, s.media_job_lease_seconds, free)
        for job in claimed:
            task = asyncio.create_task(self._run(job), name=f"media-generation-job-{job['id']}")
            self._running[job["id"]] = task
            task.add_done_callback(lambda _t, jid=job["id"]: self._running.pop(jid, None))
        return len(claimed)

    async def _run(self, job: dict[str, Any]) -> None:
        jid, user_id, request = job["id"], str(job["user_id"]), job["request"]
        try:
            if job["attempts"] > 1:
                job = await self._reserve_again(job)
                if job is None:
                    return
            images = await self._produce(user_id, request, request["text"], job_id=str(jid))
        except asyncio.CancelledError:
            raise  # shutdown: the job stays running, its lease is dropped, its reservation kept
        except errors.APIError as exc:
            await self._fail(job, {"code": exc.code, "message": exc.message, **exc.extra})
            return
        except Exception as exc:
            log.exception("generation job failed", extra={"job_id": str(jid)})
            await self._fail(job, {"code": "GENERATION_FAILED", "message": f"The job failed: {type(exc).__name__}."})
            return
        async with self.db.acquire() as conn:
            finished = await jobs_repo.finish(conn, jid, "succeeded", image_ids=[uuid.UUID(i["id"]) for i in images])
        if finished:
            await self._finish_reservation(job, charge=len(images))

    async def _reserve_again(self, job: dict[str, Any]) -> dict[str, Any] | None:
        """A job taken up again: its old reservation back, a fresh one taken (module doc)."""
        if job["reservation_id"] is not None:
            await self.quota.release(str(job["reservation_id"]))
        try:
            reservation = await self.quota.reserve(str(job["user_id"]), QUOTA_TYPE, job["request"]["count"])
        except InsufficientQuota as exc:
            async with self.db.acquire() as conn:
                await jobs_repo.set_reservation(conn, job["id"], None)
            await self._fail({**job, "reservation_id": None}, {"code": exc.code, "message": exc.message, **exc.extra})
            return None
        async with self.db.acquire() as conn:
            await jobs_repo.set_reservation(conn, job["id"], reservation.reservation_id)
        return {**job, "reservation_id": uuid.UUID(reservation.reservation_id)}

    async def _fail(self, job: dict[str, Any], error: dict[str, Any]) -> None:
        async with self.db.acquire() as conn:
            finished = await jobs_repo.finish(conn, job["id"], "failed", error=error)
        if finished:
            await self._finish_reservation(job, charge=0)

    async def _finish_reservation(self, job: dict[str, Any], charge: int) -> None:
        """Settle (`charge` images) or release the job's reservation, then remember it is done. If
        this fails, the job stays unsettled and the next scan does it again (idempotent)."""
        rid = job["reservation_id"]
        try:
            if rid is not None:
                if charge > 0:
                    await self.quota.settle(str(rid), charge)
                else:
                    await self.quota.release(str(rid))
            async with self.db.acquire() as conn:
                await jobs_repo.mark_settled(conn, job["id"])
        except Exception as exc:
            log.warning(
                "job reservation not finished; next scan retries", extra={"job_id": str(job["id"]), "error": repr(exc)}
            )
