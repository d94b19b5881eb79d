"""Rows and blobs never drift apart: a process killed between the blob write and the row write
leaves no row, and its blobs are swept once their lease expires; a user's erasure takes every
row and blob."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import httpx
import pytest

from media_service.repositories import media as media_repo
from shared.bus import EventPublisher
from shared.events import make_event
from tests.media.conftest import png
from tests.media.test_audio import wav


async def test_killed_between_blob_and_row_leaves_no_row_and_the_blobs_are_swept(
    client, service_process, tokens, media_db, eventually
):
    user_id = str(uuid.uuid4())
    headers = tokens.headers(tokens.user(user_id))
    started = datetime.now(UTC)
    data = png(77, 55, color=(12, 34, 56))
    with service_process(
        "media", media_test_kill_after_blob_write=1, media_blob_lease_seconds=2, media_sweep_interval_seconds=3600
    ) as svc:
        with pytest.raises(httpx.HTTPError):  # the connection drops: the process died mid-request
            await asyncio.to_thread(
                httpx.post,
                f"{svc.url}/images/upload",
                headers=headers,
                files={"file": ("x.png", data, "image/png")},
                timeout=15,
            )
        await eventually(lambda: svc.proc.poll() is not None, timeout=10)
    assert await media_db.fetchval("SELECT count(*) FROM media_metadata WHERE user_id = $1::uuid", user_id) == 0
    leased = await media_db.fetch(
        "SELECT name FROM media_blobs WHERE created_at >= $1 AND refs = 0 AND leases > 0", started
    )
    names = [r["name"] for r in leased]
    assert len(names) == 2  # the original and its thumbnail, written to storage before the kill
    store = client.app.state.blobs
    for name in names:
        assert await store.exists(name)

    # Any running instance sweeps them once the lease (2 s here) has expired: the in-process one
    # of this module sweeps every second.
    async def swept():
        exists = [await store.exists(n) for n in names]
        rows = await media_db.fetchval("SELECT count(*) FROM media_blobs WHERE name = ANY($1::text[])", names)
        return not any(exists) and rows == 0

    await eventually(swept, timeout=15, interval=0.5)


async def test_user_deleted_erases_every_row_and_blob(client, new_user, service_env, media_db, event_spy, eventually):
    user = new_user()
    images = [
        (
            await client.post(
                "/images/upload",
                headers=user.headers,
                files={"file": ("x.png", png(40 + i, 40, color=(i, 2, 3)), "image/png")},
            )
        ).json()
        for i in range(2)
    ]
    voice = (await client.post("/audio", headers=user.headers, files={"file": ("v.wav", wav(0.5), "audio/wav")})).json()
    rows = await media_db.fetch(
        "SELECT blob_name, thumbnail_name FROM media_metadata WHERE user_id = $1::uuid", user.id
    )
    names = [n for r in rows for n in (r["blob_name"], r["thumbnail_name"]) if n]
    assert len(names) == 5
    store = client.app.state.blobs
    async with event_spy(["image.deleted"]) as spy:
        publisher = EventPublisher(service_env["RABBITMQ_URL"], "scenextras.events", name="test-publisher")
        try:
            await publisher.publish(make_event("user.deleted", user.id, {}))
        finally:
            await publisher.close()
        await spy.wait_for("image.deleted", count=2, timeout=15)
    assert {e.data["image_id"] for e in spy.of_type("image.deleted")} >= {i["id"] for i in images}

    async def erased():
        left = await media_db.fetchval("SELECT count(*) FROM media_metadata WHERE user_id = $1::uuid", user.id)
        blobs = [await store.exists(n) for n in names]
        return left == 0 and not any(blobs)

    await eventually(erased, timeout=15, interval=0.5)
    # The deleted user's token is refused from the deletion on (shared.tombstones).
    r = await client.get(f"/audio/{voice['id']}", headers=user.headers)
    assert r.status_code == 401 and r.json()["detail"]["code"] == "USER_DELETED"


async def test_storage_down_answers_503_and_leaves_no_row(make_client, new_user, media_db, infra):
    """Blob storage reached through a proxy the test cuts: the upload answers 503
    STORAGE_UNAVAILABLE, writes no row and gives its leases back; after the cut it works again."""
    from shared.testing.proxy import TcpProxy

    proxy = await TcpProxy("127.0.0.1", 10000).start()
    connection = infra.azure_storage.replace("127.0.0.1:10000", f"127.0.0.1:{proxy.port}")
    try:
        async with make_client("media", azure_storage_connection_string=connection) as svc:
            user = new_user()
            files = {"file": ("x.png", png(31, 13, color=(99, 1, 1)), "image/png")}
            proxy.cut()
            r = await svc.post("/images/upload", headers=user.headers, files=files)
            assert r.status_code == 503 and r.json()["detail"]["code"] == "STORAGE_UNAVAILABLE"
            assert await media_db.fetchval("SELECT count(*) FROM media_metadata WHERE user_id = $1::uuid", user.id) == 0
            leaked = await media_db.fetchval(
                "SELECT count(*) FROM media_blobs WHERE refs = 0 AND leases > 0 AND lease_until > now()"
                " AND created_at > now() - interval '30 seconds'"
            )
            assert leaked == 0
            proxy.restore()
            r = await svc.post("/images/upload", headers=user.headers, files=files)
            assert r.status_code == 201
    finally:
        await proxy.close()


async def test_upload_that_outlives_its_lease_writes_no_row(make_client, new_user, media_db):
    """A lease shorter than the upload: the row is refused (the blobs may already be swept), the
    upload starts again once, then answers 503; nothing references the blobs."""
    async with make_client("media", media_blob_lease_seconds=0.001) as svc:
        user = new_user()
        files = {"file": ("x.png", png(23, 29, color=(4, 5, 6)), "image/png")}
        r = await svc.post("/images/upload", headers=user.headers, files=files)
        assert r.status_code == 503 and r.json()["detail"]["code"] == "STORAGE_UNAVAILABLE"
        assert await media_db.fetchval("SELECT count(*) FROM media_metadata WHERE user_id = $1::uuid", user.id) == 0


async def test_row_is_refused_and_nothing_changes_when_one_lease_of_two_is_gone(client, media_db):
    """The one-statement finish (lease back, row, event): with one of the two leases no longer
    valid it writes no row and no event and gives neither lease back, as the rolled-back
    transaction it replaced did."""
    names = [f"images/{uuid.uuid4().hex}.png", f"thumbnails/{uuid.uuid4().hex}.webp"]
    user_id, media_id = str(uuid.uuid4()), uuid.uuid4()
    event = make_event("image.uploaded", user_id, {"image_id": str(media_id)})
    async with media_db.acquire() as conn:
        await media_repo.lease_blobs(conn, names, ["image/png", "image/webp"], [1, 1], 60)
        # leases = 0: not valid; refs = 1 keeps the sweep away from it during the test
        await conn.execute("UPDATE media_blobs SET leases = 0, refs = 1 WHERE name = $1", names[1])
        fields = dict(media_id=media_id, user_id=user_id, kind="image", purpose="avatar", blob_name=names[0])
        fields.update(thumbnail_name=names[1], mime="image/png", size=1, width=1, height=1)
        assert await media_repo.finish_upload(conn, names, [event], **fields) is None
        leases = {
            r["name"]: r["leases"]
            for r in await conn.fetch("SELECT name, leases FROM media_blobs WHERE name = ANY($1::text[])", names)
        }
        assert leases == {names[0]: 1, names[1]: 0}
        assert await conn.fetchval("SELECT count(*) FROM media_metadata WHERE id = $1", media_id) == 0
        assert await conn.fetchval("SELECT count(*) FROM outbox_events WHERE event_id = $1::uuid", event.event_id) == 0

        # Both leases valid: one statement gives them back, writes the row (the trigger counts
        # its refs) and the event.
        await media_repo.lease_blobs(conn, names, ["image/png", "image/webp"], [1, 1], 60)
        row = await media_repo.finish_upload(conn, names, [event], **fields)
        assert row is not None and row["id"] == media_id
        blobs = {
            r["name"]: (r["leases"], r["refs"])
            for r in await conn.fetch("SELECT name, leases, refs FROM media_blobs WHERE name = ANY($1::text[])", names)
        }
        assert blobs == {names[0]: (1, 1), names[1]: (0, 2)}
        assert await conn.fetchval("SELECT count(*) FROM outbox_events WHERE event_id = $1::uuid", event.event_id) == 1
        await conn.execute("DELETE FROM media_metadata WHERE id = $1", media_id)
        await conn.execute("UPDATE media_blobs SET refs = 0 WHERE name = $1", names[1])


async def test_a_thumbnail_that_fails_while_its_original_is_stored_leaves_nothing(make_client, media_db, eventually):
    """Generation stores the original while its thumbnail is made (MediaService._store's
    `thumbnail`). A thumbnail that fails once the original is leased and written: no row, no event,
    the original's lease given back, and the sweep then takes its blob and registry row."""
    async with make_client("media", media_sweep_interval_seconds=3600) as svc:
        media, store = svc.app.state.media, svc.app.state.blobs
        name = f"images/{uuid.uuid4().hex}.png"
        original = (name, png(19, 17, color=(1, 2, 3)), "image/png")
        user_id, media_id = str(uuid.uuid4()), uuid.uuid4()
        event = make_event("image.generated", user_id, {"image_id": str(media_id)})
        original_leased = asyncio.Event()

        async def thumbnail_failing():
            # Fails only once the original's lease is taken (its write is then under way).
            await eventually(
                lambda: media_db.fetchval("SELECT leases = 1 FROM media_blobs WHERE name = $1", name),
                interval=0.005,
                what="the original leased",
            )
            original_leased.set()
            raise RuntimeError("the thumbnail could not be made")

        fields = dict(media_id=media_id, user_id=user_id, kind="image", purpose=None, blob_name=name)
        fields.update(thumbnail_name=None, mime="image/png", size=len(original[1]), width=19, height=17)
        with pytest.raises(RuntimeError, match="thumbnail"):
            await media._store([original], fields, event, thumbnail=asyncio.ensure_future(thumbnail_failing()))
        assert original_leased.is_set()
        assert await media_db.fetchval("SELECT count(*) FROM media_metadata WHERE id = $1", media_id) == 0
        assert (
            await media_db.fetchval("SELECT count(*) FROM outbox_events WHERE event_id = $1::uuid", event.event_id) == 0
        )
        # Given back (None: the periodic sweep of another app of this test run took it already).
        assert await media_db.fetchval("SELECT leases FROM media_blobs WHERE name = $1", name) in (0, None)

        async def swept() -> bool:
            await media.sweep([name])
            registered = await media_db.fetchval("SELECT count(*) FROM media_blobs WHERE name = $1", name)
            return not registered and not await store.exists(name)

        await eventually(swept, what="the original swept")
