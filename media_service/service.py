"""The media service's domain layer: uploads (images, audio), reads, deletions, the blob sweep and
a user's erasure. Routers call it; SQL is in repositories/media.py; blobs in storage.py.

Blobs and rows never drift apart (docs/media.md "Blobs and rows"):
1. lease the blobs in the registry (`media_blobs`, committed at once; a generated image's
   thumbnail once it is made, while its original is being written: `_store`'s `thumbnail`);
2. write the blobs to storage;
3. in one statement (atomic; repositories/media.py `finish_upload`): give the leases back (all
   must still be valid, else nothing is written), insert the media row (a trigger counts it in
   the blobs' `refs`), emit the event.
A crash after 1 or 2 leaves leased, unreferenced blobs; once the lease expires the sweep deletes
them (blob first, then its registry row, under the row's lock). A deleted row leaves its blobs
unreferenced; the deleting request sweeps them at once, the periodic sweep otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from azure.core.exceptions import AzureError
from PIL import Image

from media_service import audio, errors, imaging
from media_service.repositories import media as repo
from media_service.repositories import recognitions
from media_service.settings import Settings
from media_service.storage import BlobStore, address_sha256, content_address
from shared.bus import emit
from shared.events import Event, EventType, make_event
from shared.pagination import decode_keyset, encode_keyset
from shared.periodic import Periodic
from shared.tasks import cancel_all_and_wait

log = logging.getLogger("media_service")

PURPOSES = ("avatar", "character", "attachment")
SWEEP_BATCH = 100


class LeaseLost(Exception):
    """The upload outlived its lease: its blobs may have been swept; write them again."""


def parse_id(value: str, not_found: errors.ErrorCode) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise not_found() from None


# A blob to store: its name (content address), its bytes, its content type.
Blob = tuple[str, bytes, str]


def prepare_image(source: imaging.Source, **limits) -> tuple[Image.Image, Blob]:
    """imaging.prepare plus the original's blob name, in the CPU pool: the decoded image (for
    `thumbnail_blob`) and the original to store. Generation stores the original while the
    thumbnail is being made (GenerationService._store_one)."""
    image, data, mime, extension = imaging.prepare(source, **limits)
    return image, (_original_address(data, extension), data, mime)


def thumbnail_blob(image: Image.Image, thumbnail_size: int) -> Blob:
    data = imaging.make_thumbnail(image, thumbnail_size)
    return _thumbnail_address(data), data, imaging.THUMBNAIL_MIME


def process_image(source: imaging.Source, **limits) -> imaging.ProcessedImage:
    """imaging.process plus the two blob names (sha256 of each output): all of it in the CPU pool."""
    image = imaging.process(source, **limits)
    return dataclasses.replace(
        image,
        original_name=_original_address(image.data, image.extension),
        thumbnail_name=_thumbnail_address(image.thumbnail),
    )


# The content addresses of an image's two blobs (uploads and generated images alike).
def _original_address(data: bytes, extension: str) -> str:
    return content_address("images", data, extension)


def _thumbnail_address(data: bytes) -> str:
    return content_address("thumbnails", data, imaging.THUMBNAIL_EXTENSION)


class MediaService:
    def __init__(self, settings: Settings, db, store: BlobStore):
        self.settings = settings
        self.db = db
        self.store = store
        self.cpu = ThreadPoolExecutor(max_workers=settings.media_cpu_workers, thread_name_prefix="media-cpu")
        self._sweeper = Periodic(
            self._sweep_and_log,
            settings.media_sweep_interval_seconds,
            name="media-blob-sweep",
            log=log,
            failure="blob sweep failed; retrying next interval",
        )

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._sweeper.start()

    async def close(self) -> None:
        await self._sweeper.stop()
        self.cpu.shutdown(wait=False, cancel_futures=True)

    async def _in_thread(self, fn, *args, **kwargs):
        return await asyncio.get_running_loop().run_in_executor(self.cpu, lambda: fn(*args, **kwargs))

    # ------------------------------------------------------------------ images
    async def upload_image(self, user_id: str, data: imaging.Source, purpose: str) -> dict[str, Any]:
        s = self.settings
        try:
            image = await self._in_thread(
                process_image, data, max_pixels=s.media_image_max_pixels, thumbnail_size=s.media_thumbnail_size
            )
        except imaging.Unsupported as exc:
            raise errors.UNSUPPORTED_MEDIA_TYPE(str(exc)) from None
        except imaging.Invalid as exc:
            raise errors.INVALID_IMAGE(str(exc)) from None
        original, thumbnail = image.original_name, image.thumbnail_name
        media_id = uuid.uuid4()
        row = await self._store(
            [(original, image.data, image.mime), (thumbnail, image.thumbnail, imaging.THUMBNAIL_MIME)],
            dict(
                media_id=media_id,
                user_id=user_id,
                kind="image",
                purpose=purpose,
                blob_name=original,
                thumbnail_name=thumbnail,
                mime=image.mime,
                size=len(image.data),
                width=image.width,
                height=image.height,
            ),
            make_event(
                EventType.IMAGE_UPLOADED,
                user_id,
                {
                    "image_id": str(media_id),
                    "purpose": purpose,
                    "mime": image.mime,
                    "bytes": len(image.data),
                    "width": image.width,
                    "height": image.height,
                },
            ),
        )
        return self.image_out(row)

    def image_out(self, row) -> dict[str, Any]:
        out = {
            "id": str(row["id"]),
            "url": self.store.read_url(row["blob_name"]),
            "thumbnail_url": self.store.read_url(row["thumbnail_name"]) if row["thumbnail_name"] else None,
            "width": row["width"],
            "height": row["height"],
            "mime": row["mime"],
            "bytes": row["bytes"],
            "purpose": row["purpose"],
            "created_at": row["created_at"],
        }
        for optional in ("provider", "model", "prompt"):
            if row[optional] is not None:
                out[optional] = row[optional]
        return out

    async def get_image(self, user_id: str, image_id: str) -> dict[str, Any]:
        row = await repo.get_owned(self.db, parse_id(image_id, errors.IMAGE_NOT_FOUND), user_id, "image")
        if row is None:
            raise errors.IMAGE_NOT_FOUND()
        return self.image_out(row)

    async def list_images(self, user_id: str, *, purpose: str | None, limit: int, cursor: str | None) -> dict:
        before = decode_keyset(cursor) if cursor else None
        rows = await repo.list_owned(self.db, user_id, "image", purpose=purpose, limit=limit + 1, before=before)
        page = rows[:limit]
        next_cursor = None
        if len(rows) > limit:
            last = page[-1]
            next_cursor = encode_keyset(last["created_at"], last["id"])
        return {"images": [self.image_out(r) for r in page], "next_cursor": next_cursor}

    async def delete_image(self, user_id: str, image_id: str) -> None:
        await self._delete(user_id, parse_id(image_id, errors.IMAGE_NOT_FOUND), "image", errors.IMAGE_NOT_FOUND)

    # ------------------------------------------------------------------ audio
    async def upload_audio(self, user_id: str, data: bytes) -> dict[str, Any]:
        try:
            info = await self._in_thread(audio.inspect, data)
        except audio.Unsupported as exc:
            raise errors.UNSUPPORTED_MEDIA_TYPE(str(exc)) from None
        except audio.Invalid as exc:
            raise errors.INVALID_AUDIO(str(exc)) from None
        name = content_address("audio", data, info.extension)
        row = await self._store(
            [(name, data, info.mime)],
            dict(
                media_id=uuid.uuid4(),
                user_id=user_id,
                kind="audio",
                purpose=None,
                blob_name=name,
                thumbnail_name=None,
                mime=info.mime,
                size=len(data),
                duration_ms=info.duration_ms,
            ),
            None,
        )
        return self.audio_out(row)

    def audio_out(self, row) -> dict[str, Any]:
        return {
            "id": str(row["id"]),
            "url": self.store.read_url(row["blob_name"]),
            "mime": row["mime"],
            "bytes": row["bytes"],
            "duration_ms": row["duration_ms"],
            "created_at": row["created_at"],
        }

    async def get_audio(self, user_id: str, audio_id: str) -> dict[str, Any]:
        row = await repo.get_owned(self.db, parse_id(audio_id, errors.AUDIO_NOT_FOUND), user_id, "audio")
        if row is None:
            raise errors.AUDIO_NOT_FOUND()
        return self.audio_out(row)

    async def delete_audio(self, user_id: str, audio_id: str) -> None:
        await self._delete(user_id, parse_id(audio_id, errors.AUDIO_NOT_FOUND), "audio", errors.AUDIO_NOT_FOUND)

    # ------------------------------------------------------------------ blobs and rows
    async def _store(
        self,
        blobs: list[Blob],
        fields: dict,
        event: Event | None,
        thumbnail: asyncio.Future[Blob] | None = None,
    ) -> Any:
        """Write the blobs, then the row (and its event): the protocol in this module's docstring.
        `thumbnail`: a blob still being made (a task of the CPU pool); the others are leased and
        written meanwhile, it is leased and written once made, and the row names it. Retried once
        from the start if the upload outlived its lease."""
        for attempt in (1, 2):
            names = [b[0] for b in blobs]
            await self._lease(blobs)
            try:
                try:
                    thumbnail_name = await self._put_all(blobs, thumbnail, names)
                except AzureError as exc:
                    log.warning("blob write failed", extra={"error": repr(exc)})
                    raise errors.STORAGE_UNAVAILABLE() from None
                if thumbnail_name is not None:
                    fields = {**fields, "thumbnail_name": thumbnail_name}
                if self.settings.media_test_kill_after_blob_write:
                    os.kill(os.getpid(), signal.SIGKILL)  # tests only (settings refuse it elsewhere)
                async with self.db.acquire() as conn:
                    row = await repo.finish_upload(conn, names, [event] if event is not None else [], **fields)
                if row is None:
                    raise LeaseLost()
                return row
            except LeaseLost:
                if attempt == 2:
                    raise errors.STORAGE_UNAVAILABLE("The upload took too long; try again.") from None
                log.warning("upload outlived its blob lease; writing again", extra={"blobs": names})
            except BaseException:
                # Give the leases back so the sweep may take what this upload wrote; if this
                # fails too, the leases expire.
                with contextlib.suppress(BaseException):
                    await asyncio.shield(self._end_leases_quietly(names))
                raise
        raise AssertionError("unreachable")

    async def _lease(self, blobs: list[Blob]) -> None:
        names, types, sizes = [b[0] for b in blobs], [b[2] for b in blobs], [len(b[1]) for b in blobs]
        await repo.lease_blobs(self.db, names, types, sizes, self.settings.media_blob_lease_seconds)

    async def _put_all(self, blobs: list[Blob], thumbnail: asyncio.Future[Blob] | None, names: list[str]) -> str | None:
        """The blobs written side by side; `thumbnail` too once made, after its lease (its name is
        appended to `names`, the leases the caller holds). Returns the thumbnail's name. If a write
        (or the thumbnail) fails, the other writes are stopped and waited for before this raises:
        the caller then gives the leases back and the sweep may delete the blobs, so no write may
        still be under way (an SDK retry landing after the sweep would leave a blob nothing refers
        to; tests/e2e test_azurite_down_during_upload once saw it)."""
        writes = [asyncio.ensure_future(self.store.put(name, data, mime)) for name, data, mime in blobs]
        try:
            thumbnail_name = None
            if thumbnail is not None:
                thumbnail_name, data, mime = await thumbnail  # a done task gives its blob again on a retry
                await self._lease([(thumbnail_name, data, mime)])
                names.append(thumbnail_name)
                writes.append(asyncio.ensure_future(self.store.put(thumbnail_name, data, mime)))
            await asyncio.gather(*writes)
            return thumbnail_name
        except BaseException:
            await cancel_all_and_wait(writes)
            raise

    async def _end_leases_quietly(self, names: list[str]) -> None:
        try:
            async with self.db.acquire() as conn:
                await repo.end_leases(conn, names)
        except Exception:
            log.warning("lease not given back; it expires", extra={"blobs": names})

    async def _delete(self, user_id: str, media_id: uuid.UUID, kind: str, not_found: errors.ErrorCode) -> None:
        async with self.db.acquire() as conn, conn.transaction():
            row = await repo.delete_owned(conn, media_id, user_id, kind)
            if row is None:
                raise not_found()
            if kind == "image":
                await emit(conn, make_event(EventType.IMAGE_DELETED, user_id, {"image_id": str(media_id)}))
                # Its stored recognition results go with it (recognition.py).
                await recognitions.forget_image(conn, user_id, address_sha256(row["blob_name"]), row["blob_name"])
        names = [n for n in (row["blob_name"], row["thumbnail_name"]) if n]
        try:
            await self.sweep(names)
        except Exception as exc:  # the row is gone; the periodic sweep deletes the blobs
            log.warning("blob sweep after delete failed; the periodic sweep will retry", extra={"error": repr(exc)})

    async def delete_user(self, conn, user_id: str) -> int:
        """Erase every image and audio row of the user, and their stored recognition results, in the
        caller's transaction (the consumer's);
        their blobs, once unreferenced, go with the next sweep, woken here."""
        rows = await repo.delete_user(conn, user_id)
        await recognitions.delete_user(conn, user_id)
        for row in rows:
            if row["kind"] == "image":
                await emit(conn, make_event(EventType.IMAGE_DELETED, user_id, {"image_id": str(row["id"])}))
        if rows:
            self.wake_sweep()
        return len(rows)

    async def sweep(self, names: list[str] | None = None) -> int:
        """Delete blobs that no row references and no valid lease protects (all, or among `names`).
        Each batch: lock the registry rows, delete the blobs, delete the rows, commit. A crash
        in between leaves the rows, so the next sweep deletes again (a missing blob is fine)."""
        total = 0
        while True:
            async with self.db.acquire() as conn, conn.transaction():
                claimed = await repo.claim_unreferenced(conn, SWEEP_BATCH, names)
                if not claimed:
                    return total
                await asyncio.gather(*(self.store.delete(n) for n in claimed))
                await repo.forget_blobs(conn, claimed)
            total += len(claimed)
            if len(claimed) < SWEEP_BATCH:
                return total

    def wake_sweep(self) -> None:
        """Sweep soon: a moment after the caller's transaction has committed."""
        loop = asyncio.get_running_loop()
        loop.call_later(0.5, self._sweeper.wake)

    async def _sweep_and_log(self) -> None:
        swept = await self.sweep()
        if swept:
            log.info("blob sweep", extra={"deleted": swept})
