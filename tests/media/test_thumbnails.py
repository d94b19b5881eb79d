"""A generated image's thumbnail is stored after the answer (docs/media.md "Generation"): the row
is written first with no thumbnail (its thumbnail URL serves the original), then the thumbnail's
blob under a lease, then the row points at it, once. A row left pending (the process stopped
first) serves its original and is completed by the periodic pass."""

from __future__ import annotations

import asyncio
import io
import uuid

import httpx
from PIL import Image

from media_service import imaging
from media_service.repositories import media as media_repo
from media_service.service import process_image, thumbnail_address
from tests.media.conftest import png


async def pending_image(client, user, color) -> tuple[uuid.UUID, str, bytes]:
    """What a process that stopped after answering leaves: the original stored by the blobs-then-row
    protocol, the row without a thumbnail. Returns (id, original's blob name, the thumbnail to be)."""
    media = client.app.state.media
    image = process_image(png(600, 400, color=color), max_pixels=10_000_000, thumbnail_size=256)
    media_id = uuid.uuid4()
    await media._store(
        [(image.original_name, image.data, image.mime)],
        dict(
            media_id=media_id,
            user_id=user.id,
            kind="image",
            purpose=None,
            blob_name=image.original_name,
            thumbnail_name=None,
            mime=image.mime,
            size=len(image.data),
            width=image.width,
            height=image.height,
            provider="openai",
            model="gpt-image-1",
            prompt="pending",
        ),
        None,
    )
    return media_id, image.original_name, image.thumbnail


async def fetch(url: str) -> bytes:
    async with httpx.AsyncClient() as http:
        r = await http.get(url)
    assert r.status_code == 200
    return r.content


async def blob(media_db, name: str):
    return await media_db.fetchrow("SELECT refs, leases FROM media_blobs WHERE name = $1", name)


async def test_a_pending_thumbnail_serves_the_original_and_the_periodic_pass_makes_it(client, new_user, media_db):
    user = new_user()
    media_id, original, _ = await pending_image(client, user, (10, 200, 90))
    r = await client.get(f"/images/{media_id}", headers=user.headers)
    assert r.status_code == 200
    image = r.json()
    # Servable before the thumbnail exists: the thumbnail URL is the original's.
    assert image["thumbnail_url"] == image["url"]
    assert Image.open(io.BytesIO(await fetch(image["thumbnail_url"]))).size == (600, 400)

    made = await client.app.state.media.make_pending_thumbnails(older_than_seconds=0)
    assert made >= 1
    row = await media_db.fetchrow("SELECT thumbnail_name FROM media_metadata WHERE id = $1", media_id)
    assert row["thumbnail_name"] and row["thumbnail_name"].startswith("thumbnails/")
    assert tuple(await blob(media_db, row["thumbnail_name"])) == (1, 0)  # referenced once, lease given back
    image = (await client.get(f"/images/{media_id}", headers=user.headers)).json()
    thumb = Image.open(io.BytesIO(await fetch(image["thumbnail_url"])))
    assert thumb.format == "WEBP" and thumb.size == (256, 171)
    # Nothing is left pending for this row: a second pass does not touch it.
    assert media_id not in [
        r["id"] for r in await media_repo.pending_thumbnails(media_db, older_than_seconds=0, limit=1000)
    ]


async def test_the_thumbnail_is_set_exactly_once(client, new_user, media_db):
    user = new_user()
    media_id, original, thumbnail = await pending_image(client, user, (200, 20, 90))
    media = client.app.state.media
    # Two makers at once (this process's task and another instance's periodic pass): one sets it.
    results = await asyncio.gather(
        media.make_thumbnail(media_id, original, thumbnail), media.make_thumbnail(media_id, original)
    )
    assert sorted(results) == [False, True]
    name = thumbnail_address(thumbnail)
    assert await media_db.fetchval("SELECT thumbnail_name FROM media_metadata WHERE id = $1", media_id) == name
    assert tuple(await blob(media_db, name)) == (1, 0)
    assert await media.make_thumbnail(media_id, original) is False  # a third: nothing changes
    assert tuple(await blob(media_db, name)) == (1, 0)
    assert await media.store.exists(name)
    # The row's deletion takes the thumbnail's reference with it, and the blob with the sweep.
    r = await client.delete(f"/images/{media_id}", headers=user.headers)
    assert r.status_code == 204
    assert await blob(media_db, name) is None and not await media.store.exists(name)


async def test_a_thumbnail_made_after_the_row_was_deleted_is_swept(client, new_user, media_db):
    user = new_user()
    media_id, original, thumbnail = await pending_image(client, user, (90, 90, 200))
    r = await client.delete(f"/images/{media_id}", headers=user.headers)
    assert r.status_code == 204
    media = client.app.state.media
    assert await media.make_thumbnail(media_id, original, thumbnail) is False
    name = thumbnail_address(thumbnail)
    assert await blob(media_db, name) is None and not await media.store.exists(name)


async def test_a_thumbnail_whose_lease_is_gone_is_not_set(client, new_user, media_db):
    """The row points at a thumbnail only while its blob's lease is valid (else the sweep may have
    taken the blob): nothing changes and the maker writes again."""
    user = new_user()
    media_id, _, thumbnail = await pending_image(client, user, (1, 2, 3))
    name = thumbnail_address(thumbnail)
    async with media_db.acquire() as conn:
        await media_repo.lease_blobs(conn, [name], [imaging.THUMBNAIL_MIME], [len(thumbnail)], 60)
        await conn.execute("UPDATE media_blobs SET lease_until = now() - interval '1 second' WHERE name = $1", name)
        outcome = await media_repo.set_thumbnail(conn, media_id, name)
        assert not outcome["lease_valid"] and not outcome["set"]
        assert await conn.fetchval("SELECT thumbnail_name FROM media_metadata WHERE id = $1", media_id) is None
        assert tuple(await blob(conn, name)) == (0, 1)
        # A valid lease: given back, and the row points at the blob.
        await media_repo.lease_blobs(conn, [name], [imaging.THUMBNAIL_MIME], [len(thumbnail)], 60)
        outcome = await media_repo.set_thumbnail(conn, media_id, name)
        assert outcome["lease_valid"] and outcome["set"]
        assert tuple(await blob(conn, name)) == (1, 0)
