"""Images: upload (sniffing, limits, hostile files), read, list, delete, SAS URLs, events."""

from __future__ import annotations

import asyncio
import io
import struct
import time
import zipfile
import zlib

import httpx
import pytest
from azure.core.exceptions import HttpResponseError
from azure.storage.blob.aio import BlobClient
from PIL import Image

from tests.media.conftest import jpeg, png


async def upload(client, user, data: bytes, filename: str = "x.png", content_type: str = "image/png", **fields):
    return await client.post(
        "/images/upload", headers=user.headers, files={"file": (filename, data, content_type)}, data=fields
    )


async def fetch(url: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.get(url)


def error_code(response) -> str:
    return response.json()["detail"]["code"]


# ------------------------------------------------------------------------------------ happy path
async def test_upload_png_stores_reencoded_original_and_thumbnail(client, new_user, event_spy):
    user = new_user()
    data = png(640, 480)
    async with event_spy(["image.*"]) as spy:
        r = await upload(client, user, data, purpose="avatar")
        assert r.status_code == 201, r.text
        image = r.json()
        await spy.wait_for("image.uploaded", image_id=image["id"])
    assert image["width"] == 640 and image["height"] == 480
    assert image["mime"] == "image/png" and image["purpose"] == "avatar"
    key = client.app.state.blobs.account_key
    assert key not in image["url"] and key[:20] not in image["url"]
    assert "sig=" in image["url"] and "sp=r&" in image["url"]
    original = await fetch(image["url"])
    assert original.status_code == 200 and original.headers["content-type"] == "image/png"
    assert len(original.content) == image["bytes"]
    assert Image.open(io.BytesIO(original.content)).size == (640, 480)
    thumb = await fetch(image["thumbnail_url"])
    assert thumb.status_code == 200
    assert Image.open(io.BytesIO(thumb.content)).size == (256, 192)

    r = await client.get(f"/images/{image['id']}", headers=user.headers)
    assert r.status_code == 200 and r.json()["id"] == image["id"]
    assert (await fetch(r.json()["url"])).content == original.content


async def test_small_image_thumbnail_is_not_enlarged(client, new_user):
    r = await upload(client, new_user(), png(40, 30, color=(0, 200, 0)))
    thumb = await fetch(r.json()["thumbnail_url"])
    assert Image.open(io.BytesIO(thumb.content)).size == (40, 30)


async def test_exif_orientation_is_applied_before_it_is_dropped(client, new_user):
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    r = await upload(client, new_user(), jpeg(80, 40, exif=exif.tobytes()), "r.jpg", "image/jpeg")
    assert (r.json()["width"], r.json()["height"]) == (40, 80)
    stored = Image.open(io.BytesIO((await fetch(r.json()["url"])).content))
    assert stored.size == (40, 80) and 0x0112 not in stored.getexif()


async def test_default_purpose_and_bad_purpose(client, new_user):
    user = new_user()
    r = await upload(client, user, jpeg(), "a.jpg", "image/jpeg")
    assert r.status_code == 201 and r.json()["purpose"] == "attachment" and r.json()["mime"] == "image/jpeg"
    r = await upload(client, user, jpeg(), "a.jpg", "image/jpeg", purpose="banner")
    assert r.status_code == 422 and error_code(r) == "VALIDATION_ERROR"


async def test_type_comes_from_the_bytes_not_the_name_or_header(client, new_user):
    user = new_user()
    r = await upload(client, user, jpeg(), "photo.png", "image/png")  # a JPEG called PNG
    assert r.status_code == 201 and r.json()["mime"] == "image/jpeg"
    r = await upload(client, user, b"just some text, not an image", "x.png", "image/png")
    assert r.status_code == 415 and error_code(r) == "UNSUPPORTED_MEDIA_TYPE"


async def test_gif_and_webp_accepted(client, new_user):
    user = new_user()
    out = io.BytesIO()
    Image.new("P", (30, 20)).save(out, "GIF")
    r = await upload(client, user, out.getvalue(), "a.gif", "image/gif")
    assert r.status_code == 201 and r.json()["mime"] == "image/png"  # first frame, as PNG
    out = io.BytesIO()
    Image.new("RGB", (30, 20), (1, 2, 3)).save(out, "WEBP")
    r = await upload(client, user, out.getvalue(), "a.webp", "image/webp")
    assert r.status_code == 201 and r.json()["mime"] == "image/webp"


# ------------------------------------------------------------------------------ hostile files
async def test_gps_exif_stripped(client, new_user):
    user = new_user()
    exif = Image.Exif()
    exif[0x010F] = "SpyCam"
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2], gps[3], gps[4] = "N", (52.0, 22.0, 1.0), "E", (4.0, 53.0, 2.0)
    data = jpeg(80, 60, exif=exif.tobytes())
    assert Image.open(io.BytesIO(data)).getexif().get_ifd(0x8825)
    r = await upload(client, user, data, "gps.jpg", "image/jpeg")
    assert r.status_code == 201, r.text
    stored = (await fetch(r.json()["url"])).content
    assert not Image.open(io.BytesIO(stored)).getexif()
    assert b"Exif" not in stored and b"SpyCam" not in stored


async def test_truncated_png_is_invalid(client, new_user):
    pixels = bytes(range(256)) * (300 * 300 * 3 // 256)
    noisy = Image.frombytes("RGB", (300, 300), pixels + b"\0" * (300 * 300 * 3 - len(pixels)))
    out = io.BytesIO()
    noisy.save(out, "PNG")
    data = out.getvalue()
    r = await upload(client, new_user(), data[: len(data) // 2])
    assert r.status_code == 422 and error_code(r) == "INVALID_IMAGE"


def png_bomb(width: int, height: int) -> bytes:
    """A real PNG of width x height 1-bit pixels, all zero: tiny on disk, huge decoded."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    row = b"\0" * (1 + (width + 7) // 8)
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row * 1000) for _ in range(height // 1000)) + compressor.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


async def test_decompression_bomb_is_refused_from_its_header(client, new_user):
    bomb = png_bomb(20_000, 20_000)
    assert len(bomb) < 200_000
    started = time.perf_counter()
    r = await upload(client, new_user(), bomb)
    assert r.status_code == 422 and error_code(r) == "INVALID_IMAGE"
    assert "pixels" in r.json()["detail"]["message"]
    assert time.perf_counter() - started < 2


async def test_svg_html_zip_and_polyglots_are_unsupported(client, new_user):
    user = new_user()
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    html = b"<!doctype html><html><body><img src=x onerror=alert(1)></body></html>"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("a.txt", "hello")
    zip_bytes = buf.getvalue()
    png_plus_zip = png() + zip_bytes
    out = io.BytesIO()
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "<script>alert(document.cookie)</script>")
    Image.new("RGB", (10, 10)).save(out, "PNG", pnginfo=info)
    png_with_script = out.getvalue()
    gif_html = b"GIF89a" + b"\x01\x00\x01\x00\x00\x00\x00" + b"<html><script>alert(1)</script></html>"
    for name, data in [
        ("x.svg", svg),
        ("x.png", html),
        ("archive.png", zip_bytes),
        ("poly.png", png_plus_zip),
        ("script.png", png_with_script),
        ("gifar.gif", gif_html),
    ]:
        r = await upload(client, user, data, name, "image/png")
        assert r.status_code == 415, (name, r.text)
        assert error_code(r) == "UNSUPPORTED_MEDIA_TYPE"
    r = await client.get("/images", headers=user.headers)
    assert r.json()["images"] == []  # nothing was stored


async def test_image_over_the_pixel_limit(client, new_user):
    """Under Pillow's own bomb threshold, over the service's (30 MP in these tests)."""
    r = await upload(client, new_user(), png_bomb(6_000, 6_000))
    assert r.status_code == 422 and error_code(r) == "INVALID_IMAGE"
    assert "6000x6000" in r.json()["detail"]["message"]


async def test_empty_file(client, new_user):
    r = await upload(client, new_user(), b"")
    assert r.status_code == 422 and error_code(r) == "INVALID_IMAGE"


async def test_missing_file_part_and_not_multipart(client, new_user):
    user = new_user()
    r = await client.post("/images/upload", headers=user.headers, data={"purpose": "avatar"})
    assert r.status_code == 422 and error_code(r) == "VALIDATION_ERROR"
    r = await client.post("/images/upload", headers=user.headers, json={"file": "x"})
    assert r.status_code == 422 and error_code(r) == "VALIDATION_ERROR"


# ---------------------------------------------------------------------------------- size limit
async def test_declared_body_over_the_limit_is_refused_unread(client, new_user):
    user = new_user()
    big = b"\x89PNG\r\n\x1a\n" + b"\0" * (4 * 1024 * 1024)
    r = await upload(client, user, big)
    assert r.status_code == 413 and error_code(r) == "TOO_LARGE"
    assert r.json()["detail"]["limit_bytes"] == 3 * 1024 * 1024


async def test_streamed_body_stops_being_read_at_the_limit(client, new_user):
    """Chunked (no Content-Length): 413 after about the limit, not after the 40 MB the client offers."""
    user = new_user()
    boundary = "b0undary"
    sent = 0

    async def body():
        nonlocal sent
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="x.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        yield head
        chunk = b"\x89PNG\r\n\x1a\n" + b"\0" * (64 * 1024 - 8)
        for _ in range(640):  # 40 MB
            sent += len(chunk)
            yield chunk
        yield f"\r\n--{boundary}--\r\n".encode()

    r = await client.post(
        "/images/upload",
        headers={**user.headers, "Content-Type": f"multipart/form-data; boundary={boundary}"},
        content=body(),
    )
    assert r.status_code == 413 and error_code(r) == "TOO_LARGE"
    assert sent <= 3 * 1024 * 1024 + 2 * 64 * 1024


async def test_body_over_the_service_limit(client, new_user):
    r = await client.post(
        "/images/upload",
        headers={
            **new_user().headers,
            "Content-Length": str(200 * 1024 * 1024),
            "Content-Type": "multipart/form-data; boundary=x",
        },
        content=b"--x--",
    )
    assert r.status_code == 413


# -------------------------------------------------------------------------- reads and ownership
async def test_bad_or_missing_token(client, new_user):
    r = await client.post("/images/upload", files={"file": ("x.png", png(), "image/png")})
    assert r.status_code == 401
    r = await client.get("/images", headers={"Authorization": "Bearer not-a-token"})
    assert r.status_code == 401 and error_code(r) == "INVALID_TOKEN"


async def test_another_users_image_is_not_found(client, new_user):
    owner, other = new_user(), new_user()
    r = await upload(client, owner, png(color=(1, 1, 1)))
    image_id = r.json()["id"]
    for method in ("GET", "DELETE"):
        r = await client.request(method, f"/images/{image_id}", headers=other.headers)
        assert r.status_code == 404 and error_code(r) == "IMAGE_NOT_FOUND"
    assert (await client.get(f"/images/{image_id}", headers=owner.headers)).status_code == 200
    r = await client.get("/images/not-a-uuid", headers=owner.headers)
    assert r.status_code == 404


async def test_list_newest_first_with_cursor_and_purpose(client, new_user):
    user, other = new_user(), new_user()
    ids = []
    for i in range(5):
        r = await upload(client, user, png(10 + i, 10), purpose="character" if i % 2 else "attachment")
        ids.append(r.json()["id"])
    await upload(client, other, png(99, 10))
    r = await client.get("/images?limit=2", headers=user.headers)
    page = r.json()
    seen = [i["id"] for i in page["images"]]
    while page["next_cursor"]:
        page = (await client.get(f"/images?limit=2&cursor={page['next_cursor']}", headers=user.headers)).json()
        seen += [i["id"] for i in page["images"]]
    assert seen == ids[::-1]
    r = await client.get("/images?purpose=character", headers=user.headers)
    assert [i["id"] for i in r.json()["images"]] == [ids[3], ids[1]]
    r = await client.get("/images?cursor=garbage!", headers=user.headers)
    assert r.status_code == 422 and error_code(r) == "INVALID_CURSOR"
    r = await client.get("/images?purpose=banner", headers=user.headers)
    assert r.status_code == 422


# ------------------------------------------------------------------------------------ deletion
async def test_delete_removes_row_and_blobs_and_emits(client, new_user, event_spy, media_db):
    user = new_user()
    r = await upload(client, user, png(33, 44, color=(9, 8, 7)))
    image = r.json()
    row = await media_db.fetchrow(
        "SELECT blob_name, thumbnail_name FROM media_metadata WHERE id = $1::uuid", image["id"]
    )
    store = client.app.state.blobs
    assert await store.exists(row["blob_name"]) and await store.exists(row["thumbnail_name"])
    async with event_spy(["image.deleted"]) as spy:
        r = await client.delete(f"/images/{image['id']}", headers=user.headers)
        assert r.status_code == 204
        await spy.wait_for("image.deleted", image_id=image["id"])
    assert not await store.exists(row["blob_name"]) and not await store.exists(row["thumbnail_name"])
    assert await media_db.fetchval("SELECT count(*) FROM media_blobs WHERE name = $1", row["blob_name"]) == 0
    assert (await fetch(image["url"])).status_code == 404
    r = await client.get(f"/images/{image['id']}", headers=user.headers)
    assert r.status_code == 404
    assert (await client.delete(f"/images/{image['id']}", headers=user.headers)).status_code == 404


async def test_same_bytes_stored_once_and_kept_while_referenced(client, new_user, media_db):
    a, b = new_user(), new_user()
    data = png(21, 21, color=(5, 6, 7))
    first = (await upload(client, a, data)).json()
    second = (await upload(client, b, data)).json()
    names = await media_db.fetch(
        "SELECT blob_name FROM media_metadata WHERE id = ANY($1::uuid[])", [first["id"], second["id"]]
    )
    assert len({r["blob_name"] for r in names}) == 1
    name = names[0]["blob_name"]
    assert await media_db.fetchval("SELECT refs FROM media_blobs WHERE name = $1", name) == 2
    store = client.app.state.blobs
    assert (await client.delete(f"/images/{first['id']}", headers=a.headers)).status_code == 204
    assert await store.exists(name)  # b's image still uses it
    url = (await client.get(f"/images/{second['id']}", headers=b.headers)).json()["url"]
    assert (await fetch(url)).status_code == 200
    assert (await client.delete(f"/images/{second['id']}", headers=b.headers)).status_code == 204
    assert not await store.exists(name)


async def test_concurrent_uploads_of_the_same_bytes_and_deletes(client, new_user, media_db):
    """Uploads and deletes of one content racing: every surviving row's blobs exist."""
    users = [new_user() for _ in range(6)]
    data = png(17, 19, color=(50, 60, 70))
    first = await asyncio.gather(*(upload(client, u, data) for u in users))
    assert all(r.status_code == 201 for r in first), [r.text for r in first if r.status_code != 201]
    await asyncio.gather(
        *(
            client.delete(f"/images/{r.json()['id']}", headers=u.headers)
            for u, r in zip(users[:3], first[:3], strict=True)
        ),
        *(upload(client, u, data) for u in users[:3]),
    )
    rows = await media_db.fetch(
        "SELECT blob_name, thumbnail_name FROM media_metadata WHERE user_id = ANY($1::uuid[])", [u.id for u in users]
    )
    assert len(rows) == 6
    store = client.app.state.blobs
    for row in rows:
        assert await store.exists(row["blob_name"]) and await store.exists(row["thumbnail_name"])


# ------------------------------------------------------------------------------------ SAS URLs
async def test_sas_url_expires(make_client, new_user):
    async with make_client("media", media_sas_ttl_seconds=2) as short:
        user = new_user()
        r = await upload(short, user, png(12, 12, color=(3, 3, 3)))
        url = r.json()["url"]
        original = await fetch(url)
        assert original.status_code == 200
        # Read-only: the URL's signature does not let anyone overwrite or delete the blob (through
        # the storage SDK, as a client holding the URL would).
        async with BlobClient.from_blob_url(url) as blob:
            with pytest.raises(HttpResponseError) as refused:
                await blob.upload_blob(b"overwritten", overwrite=True)
            assert refused.value.status_code == 403
            with pytest.raises(HttpResponseError) as refused:
                await blob.delete_blob()
            assert refused.value.status_code == 403
        assert (await fetch(url)).content == original.content
        unsigned = url.split("?")[0]
        assert (await fetch(unsigned)).status_code in (403, 404)  # never readable without a signature
        await asyncio.sleep(3.2)
        assert (await fetch(url)).status_code == 403
        fresh = (await short.get(f"/images/{r.json()['id']}", headers=user.headers)).json()["url"]
        assert (await fetch(fresh)).status_code == 200


async def test_legacy_prefix(client, new_user):
    user = new_user()
    files = {"file": ("x.png", png(), "image/png")}
    r = await client.post("/api/images/images/upload", headers=user.headers, files=files)
    assert r.status_code == 201
