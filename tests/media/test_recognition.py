"""POST /images/recognize (docs/media.md "Recognition").

The media app runs in-process against the run's PostgreSQL, Redis, RabbitMQ and Azurite; the
vision models are the sandbox's (real anthropic/openai SDKs), which "recognise" a picture by its
colour (sandbox/llm.py RECOGNISABLE); Content is a real uvicorn process with its real seed,
reached over HTTP. Quota is Payment's SQL functions in the core database (shared/quota.py).
"""

from __future__ import annotations

import asyncio
import base64
import io
import struct
import uuid
import zipfile
import zlib

import asyncpg
import pytest
import pytest_asyncio
from PIL import Image

from media_service.recognition import parse_reply
from shared.bus import EventPublisher
from shared.events import make_event
from shared.migrate import migrate
from shared.testing.processes import ServiceProcess, free_port
from tests.media.conftest import LIMITS, jpeg, png

MATRIX_GREEN = (0, 200, 70)  # sandbox/llm.py: The Matrix, Neo
STAR_WARS_BLUE = (40, 90, 230)  # Star Wars, Luke Skywalker, Han Solo
UNKNOWN_MAGENTA = (230, 0, 230)  # "Zorblax Nine": a title Content does not know
VISION_PROVIDERS = ("anthropic", "openai", "gemini")  # the catalogue's vision models' providers


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def core_db(service_env):
    """Payment's migrations (the quota functions) in the core database, and a pool on it."""
    await migrate(service_env["DATABASE_URL"], "payment")
    pool = await asyncpg.create_pool(service_env["DATABASE_URL"], min_size=1, max_size=4)
    yield pool
    await pool.close()


@pytest.fixture(scope="module")
def content_process(service_env, sandbox, tmp_path_factory):
    env = {
        **service_env,
        "CONTENT_DATA_DIR": str(tmp_path_factory.mktemp("content-data")),
        "CONTENT_SEED": "real",
        "CONTENT_STORE_MAP_SIZE_GB": "1",
    }
    proc = ServiceProcess("content", env, log_dir=tmp_path_factory.mktemp("content-logs"))
    proc.start(timeout=120)  # generous: imports alone are slow on a loaded two-core machine
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def recognition_env(sandbox, content_process) -> dict[str, str]:
    return {**LIMITS, **sandbox.env(keys=True), "CONTENT_SERVICE_URL": content_process.url}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def rclient(make_client, recognition_env, core_db):
    async with make_client("media", **recognition_env) as c:
        yield c


@pytest.fixture(autouse=True)
def _no_faults(sandbox):
    sandbox.control.clear_faults()
    yield
    sandbox.control.clear_faults()


class User:
    def __init__(self, tokens, tier: int):
        self.id = str(uuid.uuid4())
        self.headers = tokens.headers(tokens.user(self.id, tier=tier))


@pytest.fixture
def make_user(tokens, core_db):
    """A user of a tier, as Payment leaves one: a subscription row (effective_tier reads it) and
    the tier's allowances for a new period. Free users have no row."""

    async def _make(tier: int = 1) -> User:
        user = User(tokens, tier)
        if tier > 0:
            await core_db.execute(
                """
                INSERT INTO subscriptions (user_id, source, external_id, tier, status, current_period_end,
                                           source_updated_at)
                VALUES ($1::uuid, 'stripe', $2, $3, 'active', now() + interval '1 month', now())
                """,
                user.id,
                f"sub_test_{uuid.uuid4().hex[:12]}",
                tier,
            )
            await core_db.execute("SELECT quota_reset($1::uuid, $2, now() + interval '1 month', 'test')", user.id, tier)
        return user

    return _make


async def remaining(core_db, user: User) -> int:
    return await core_db.fetchval(
        "SELECT remaining FROM quota_snapshot($1::uuid) WHERE quota_type = 'image_recognition'", user.id
    )


async def reservations(core_db, user: User) -> dict[str, int]:
    rows = await core_db.fetch(
        "SELECT state, count(*) AS n FROM quota_reservations WHERE user_id = $1::uuid GROUP BY state", user.id
    )
    return {r["state"]: r["n"] for r in rows}


async def recognize_file(client, user, data: bytes, filename: str = "x.jpg", content_type: str = "image/jpeg"):
    return await client.post("/images/recognize", headers=user.headers, files={"file": (filename, data, content_type)})


def code(response) -> str:
    return response.json()["detail"]["code"]


def photo(color, size=(800, 600)) -> bytes:
    """A JPEG mostly of one colour, with some structure so it is not a flat file."""
    image = Image.new("RGB", size, color)
    for x in range(0, size[0], 40):
        image.paste(tuple(min(255, c + 25) for c in color), (x, 0, x + 4, size[1]))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


# ------------------------------------------------------------------------------- happy paths
async def test_uploaded_picture_is_described_and_matched_to_content(rclient, make_user, core_db, sandbox):
    user = await make_user(tier=1)
    assert await remaining(core_db, user) == 10
    since = len(sandbox.control.requests())
    r = await recognize_file(rclient, user, photo(MATRIX_GREEN, size=(2400, 1600)))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["description"].startswith("Green code rains down")
    assert "science fiction" in body["tags"]
    assert body["matches_available"] is True
    assert body["matches"][0] == {"type": "movie", "id": "movie:603", "name": "The Matrix"}
    assert [m["name"] for m in body["matches"] if m["type"] == "character"] == ["Neo"]
    assert body["model"] == "claude-haiku-4-5"
    assert body["cached"] is False
    assert await remaining(core_db, user) == 9
    assert await reservations(core_db, user) == {"settled": 1}
    # The model was shown a downscaled copy (at most MEDIA_VISION_MAX_SIDE px), as base64.
    sent = [q for q in sandbox.control.requests()[since:] if q["provider"] == "anthropic"]
    assert len(sent) == 1
    block = sent[0]["body"]["messages"][0]["content"][0]
    assert block["type"] == "image" and block["source"]["media_type"] == "image/jpeg"
    recorded = block["source"]["data"].split("...[", 1)[0]  # the sandbox keeps the start of long strings
    shown = Image.open(io.BytesIO(base64.b64decode(recorded[: len(recorded) // 4 * 4])))  # the header is enough
    assert shown.size == (1024, 683)
    # Nothing was stored: recognising a file is not uploading it.
    listed = await rclient.get("/images", headers=user.headers)
    assert listed.json()["images"] == []


async def test_own_stored_image_by_id(rclient, make_user, core_db):
    user = await make_user(tier=1)
    up = await rclient.post(
        "/images/upload", headers=user.headers, files={"file": ("sw.png", png(500, 400, STAR_WARS_BLUE), "image/png")}
    )
    assert up.status_code == 201, up.text
    r = await rclient.post("/images/recognize", headers=user.headers, json={"image_id": up.json()["id"]})
    assert r.status_code == 200, r.text
    matches = r.json()["matches"]
    assert {"type": "movie", "id": "movie:11", "name": "Star Wars"} in matches
    assert {m["name"] for m in matches if m["type"] == "character"} == {"Luke Skywalker", "Han Solo"}
    assert await remaining(core_db, user) == 9


async def test_names_content_does_not_know_are_left_out(rclient, make_user):
    user = await make_user(tier=2)  # Max: unlimited
    r = await recognize_file(rclient, user, png(300, 300, UNKNOWN_MAGENTA), "m.png", "image/png")
    assert r.status_code == 200, r.text
    assert r.json()["description"].startswith("A purple robot")
    assert r.json()["matches"] == [] and r.json()["matches_available"] is True


async def test_unrecognised_picture(rclient, make_user):
    user = await make_user(tier=2)
    r = await recognize_file(rclient, user, photo((128, 128, 128)))
    assert r.status_code == 200
    assert r.json() | {"model": None} == {
        "description": "A picture the sandbox does not recognise.",
        "tags": ["unrecognised"],
        "matches": [],
        "matches_available": True,
        "model": None,
        "cached": False,
    }


async def test_falls_back_to_the_next_vision_model(rclient, make_user, core_db, sandbox):
    user = await make_user(tier=1)
    sandbox.control.fault("anthropic", 529, count=None)
    r = await recognize_file(rclient, user, photo(MATRIX_GREEN))
    assert r.status_code == 200, r.text
    assert r.json()["model"] == "gpt-4o-mini"  # OpenAI's JSON mode: a bare object, no fence
    assert r.json()["matches"][0]["id"] == "movie:603"
    assert await remaining(core_db, user) == 9


# ------------------------------------------------------------------------------------ quota
async def test_free_tier_has_no_recognition(rclient, make_user, core_db, sandbox):
    user = await make_user(tier=0)
    since = len(sandbox.control.requests())
    r = await recognize_file(rclient, user, photo(MATRIX_GREEN))
    assert r.status_code == 402 and code(r) == "INSUFFICIENT_QUOTA"
    assert r.json()["detail"]["quota_type"] == "image_recognition" and r.json()["detail"]["remaining"] == 0
    assert sandbox.control.requests()[since:] == []  # no model was asked


async def test_concurrent_recognitions_spend_exactly_what_is_left(rclient, make_user, core_db):
    user = await make_user(tier=1)
    await core_db.execute("UPDATE user_quotas SET quota_image_recognition = 3 WHERE user_id = $1::uuid", user.id)
    pictures = [photo(MATRIX_GREEN, size=(800 + i, 600)) for i in range(8)]  # different files: none is a repeat
    answers = await asyncio.gather(*(recognize_file(rclient, user, data) for data in pictures))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] * 3 + [402] * 5, [a.text for a in answers if a.status_code not in (200, 402)]
    assert await remaining(core_db, user) == 0
    assert await reservations(core_db, user) == {"settled": 3}


async def test_no_model_answering_is_503_and_nothing_is_charged(rclient, make_user, core_db, sandbox):
    user = await make_user(tier=1)
    for provider in VISION_PROVIDERS:
        sandbox.control.fault(provider, 503, count=None)
    r = await recognize_file(rclient, user, photo(MATRIX_GREEN))
    assert r.status_code == 503 and code(r) == "LLM_UNAVAILABLE", r.text
    assert r.headers["retry-after"] == "5"
    assert await remaining(core_db, user) == 10
    assert await reservations(core_db, user) == {"released": 1}
    sandbox.control.clear_faults()
    r = await recognize_file(rclient, user, photo(MATRIX_GREEN))
    assert r.status_code == 200 and await remaining(core_db, user) == 9
    assert r.json()["cached"] is False  # the failed attempt stored nothing


async def test_content_down_answers_without_matches(make_client, recognition_env, make_user, core_db):
    user = await make_user(tier=1)
    env = {**recognition_env, "CONTENT_SERVICE_URL": f"http://127.0.0.1:{free_port()}"}
    async with make_client("media", **env) as client:
        r = await recognize_file(client, user, photo(MATRIX_GREEN))
    assert r.status_code == 200, r.text
    assert r.json()["description"].startswith("Green code rains down")
    assert r.json()["matches"] == [] and r.json()["matches_available"] is False
    assert await remaining(core_db, user) == 9  # the model's work was done: charged


# ------------------------------------------------------------------------- stored results
def model_calls(sandbox, since: int) -> int:
    return len([q for q in sandbox.control.requests()[since:] if q["provider"] in VISION_PROVIDERS])


async def stored_rows(media_db, user: User) -> int:
    return await media_db.fetchval("SELECT count(*) FROM image_recognitions WHERE user_id = $1::uuid", user.id)


async def test_a_repeat_is_answered_from_the_stored_result_uncharged(rclient, make_user, core_db, sandbox):
    user, other = await make_user(tier=1), await make_user(tier=1)
    data = photo(STAR_WARS_BLUE)
    first = await recognize_file(rclient, user, data)
    assert first.status_code == 200 and first.json()["cached"] is False
    since = len(sandbox.control.requests())
    again = await recognize_file(rclient, user, data)
    assert again.status_code == 200, again.text
    assert again.json() == first.json() | {"cached": True}  # matches searched again, found the same
    assert model_calls(sandbox, since) == 0
    assert await remaining(core_db, user) == 9 and await reservations(core_db, user) == {"settled": 1}
    # Even with no quota left, what was paid for is still answered.
    await core_db.execute("UPDATE user_quotas SET quota_image_recognition = 0 WHERE user_id = $1::uuid", user.id)
    assert (await recognize_file(rclient, user, data)).json()["cached"] is True
    # Stored per user: another user sending the same bytes causes (and pays for) their own call.
    theirs = await recognize_file(rclient, other, data)
    assert theirs.status_code == 200 and theirs.json()["cached"] is False
    assert model_calls(sandbox, since) == 1 and await remaining(core_db, other) == 9


async def test_concurrent_identical_requests_ask_the_model_once(rclient, make_user, core_db, sandbox):
    user = await make_user(tier=1)
    data = photo((10, 190, 80))  # Matrix green, a picture no other test sends
    since = len(sandbox.control.requests())
    answers = await asyncio.gather(*(recognize_file(rclient, user, data) for _ in range(6)))
    assert [a.status_code for a in answers] == [200] * 6, [a.text for a in answers]
    assert sorted(a.json()["cached"] for a in answers) == [False] + [True] * 5
    assert len({a.json()["description"] for a in answers}) == 1
    assert model_calls(sandbox, since) == 1
    assert await remaining(core_db, user) == 9 and await reservations(core_db, user) == {"settled": 1}


async def test_a_stored_image_is_recognised_once_and_its_result_goes_with_it(
    rclient, make_user, core_db, media_db, sandbox
):
    user = await make_user(tier=1)
    data = png(320, 240, STAR_WARS_BLUE)
    ids = []
    for _ in range(2):  # the same bytes twice: two rows, one blob
        up = await rclient.post("/images/upload", headers=user.headers, files={"file": ("a.png", data, "image/png")})
        assert up.status_code == 201, up.text
        ids.append(up.json()["id"])
    since = len(sandbox.control.requests())
    answers = [
        (await rclient.post("/images/recognize", headers=user.headers, json={"image_id": i})).json() for i in ids
    ]
    assert [a["cached"] for a in answers] == [False, True]  # the same bytes: one call
    assert model_calls(sandbox, since) == 1 and await remaining(core_db, user) == 9
    # Deleting one of the two images keeps the result: the other still holds those bytes.
    assert (await rclient.delete(f"/images/{ids[0]}", headers=user.headers)).status_code == 204
    assert await stored_rows(media_db, user) == 1
    assert await recognize_by_id(rclient, user, ids[1]) is True
    # Deleting the last one erases it: the same picture uploaded again is recognised (and charged) anew.
    assert (await rclient.delete(f"/images/{ids[1]}", headers=user.headers)).status_code == 204
    assert await stored_rows(media_db, user) == 0
    up = await rclient.post("/images/upload", headers=user.headers, files={"file": ("a.png", data, "image/png")})
    assert await recognize_by_id(rclient, user, up.json()["id"]) is False
    assert await remaining(core_db, user) == 8


async def recognize_by_id(client, user: User, image_id: str) -> bool:
    r = await client.post("/images/recognize", headers=user.headers, json={"image_id": image_id})
    assert r.status_code == 200, r.text
    return r.json()["cached"]


async def test_another_model_or_prompt_recognises_again(rclient, make_user, core_db, media_db, sandbox):
    user = await make_user(tier=1)
    data = photo(UNKNOWN_MAGENTA)
    assert (await recognize_file(rclient, user, data)).json()["cached"] is False
    # As if the stored result came from another model or prompt: its version no longer matches.
    await media_db.execute("UPDATE image_recognitions SET version = 'old-model|old' WHERE user_id = $1::uuid", user.id)
    since = len(sandbox.control.requests())
    r = await recognize_file(rclient, user, data)
    assert r.status_code == 200 and r.json()["cached"] is False
    assert model_calls(sandbox, since) == 1 and await remaining(core_db, user) == 8


async def test_a_claim_left_by_a_dead_process_is_taken_over(rclient, make_user, core_db, media_db):
    """A request that died holding the claim (no result): once its claim expired, the next
    request asks the model itself instead of waiting for ever."""
    user = await make_user(tier=1)
    data = photo((5, 210, 60))
    await recognize_file(rclient, user, data)
    await media_db.execute(
        "UPDATE image_recognitions SET result = NULL, claimed_until = now() - interval '1 second'"
        " WHERE user_id = $1::uuid",
        user.id,
    )
    r = await recognize_file(rclient, user, data)
    assert r.status_code == 200 and r.json()["cached"] is False
    assert await remaining(core_db, user) == 8


async def test_user_deleted_erases_stored_results(rclient, make_user, media_db, service_env, eventually):
    user = await make_user(tier=2)
    assert (await recognize_file(rclient, user, photo((0, 205, 75)))).status_code == 200
    assert await stored_rows(media_db, user) == 1
    publisher = EventPublisher(service_env["RABBITMQ_URL"], "scenextras.events", name="test-publisher")
    try:
        await publisher.publish(make_event("user.deleted", user.id, {}))
    finally:
        await publisher.close()

    async def erased():
        return await stored_rows(media_db, user) == 0

    await eventually(erased, timeout=15, interval=0.3)


# ------------------------------------------------------------------------- who and what
async def test_another_users_image_is_404_and_costs_nothing(rclient, make_user, core_db, sandbox):
    owner, other = await make_user(tier=1), await make_user(tier=1)
    up = await rclient.post(
        "/images/upload", headers=owner.headers, files={"file": ("a.jpg", photo(MATRIX_GREEN), "image/jpeg")}
    )
    since = len(sandbox.control.requests())
    for image_id in (up.json()["id"], str(uuid.uuid4()), "not-a-uuid"):
        r = await rclient.post("/images/recognize", headers=other.headers, json={"image_id": image_id})
        assert r.status_code == 404 and code(r) == "IMAGE_NOT_FOUND", (image_id, r.text)
    assert await remaining(core_db, other) == 10
    assert sandbox.control.requests()[since:] == []


async def test_token_is_required(rclient):
    r = await rclient.post("/images/recognize", json={"image_id": str(uuid.uuid4())})
    assert r.status_code == 401
    r = await rclient.post(
        "/images/recognize", headers={"Authorization": "Bearer nope"}, json={"image_id": str(uuid.uuid4())}
    )
    assert r.status_code == 401


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _png_bomb(width: int = 20_000, height: int = 20_000) -> bytes:
    raw = zlib.compress(b"\x00" * (width // 8 + 1), 9)  # one row; the header is what matters
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", raw) + _png_chunk(b"IEND", b"")


def _zip() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("a.txt", "hello")
    return out.getvalue()


HOSTILE = [
    ("svg with script", b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', 415),
    ("zip renamed .png", _zip(), 415),
    ("png with a zip appended", png() + _zip(), 415),
    ("empty file", b"", 422),
    ("truncated png", png(200, 200)[:120], 422),
    ("20k x 20k png bomb", _png_bomb(), 422),
]


@pytest.mark.parametrize(("what", "data", "status"), HOSTILE, ids=[h[0] for h in HOSTILE])
async def test_hostile_files_are_refused_before_any_quota(rclient, make_user, core_db, what, data, status):
    user = await make_user(tier=1)
    r = await recognize_file(rclient, user, data, "x.png", "image/png")
    assert r.status_code == status, (what, r.text)
    assert await remaining(core_db, user) == 10 and await reservations(core_db, user) == {}


async def test_jpeg_with_gps_is_recognised_from_pixels(rclient, make_user):
    exif = Image.Exif()
    exif[0x8825] = {1: "N", 2: (48.0, 51.0, 29.0)}  # GPS IFD
    out = io.BytesIO()
    Image.new("RGB", (400, 300), MATRIX_GREEN).save(out, "JPEG", exif=exif.tobytes())
    r = await recognize_file(rclient, await make_user(tier=2), out.getvalue())
    assert r.status_code == 200 and r.json()["matches"][0]["id"] == "movie:603"


async def test_bad_bodies(rclient, make_user, core_db):
    user = await make_user(tier=1)
    too_big = b"\xff\xd8\xff" + b"\x00" * (LIMITS["media_image_max_bytes"] + 10)
    r = await recognize_file(rclient, user, too_big)
    assert r.status_code == 413 and code(r) == "TOO_LARGE"
    r = await rclient.post("/images/recognize", headers=user.headers, content=b"hello")
    assert r.status_code == 415 and code(r) == "UNSUPPORTED_MEDIA_TYPE"
    json_headers = {**user.headers, "Content-Type": "application/json"}
    for body in (b"{", b'{"image_id": "\xff"}'):  # not JSON: 400 INVALID_JSON, as on every JSON route
        r = await rclient.post("/images/recognize", headers=json_headers, content=body)
        assert r.status_code == 400 and code(r) == "INVALID_JSON", (body, r.text)
    for body in (b"[]", b'{"image_id": 5}', b'{"image_id": ""}', b'{"image_id": "x", "more": 1}', b"null"):
        r = await rclient.post("/images/recognize", headers=json_headers, content=body)
        assert r.status_code == 422 and code(r) == "VALIDATION_ERROR", (body, r.text)
    r = await rclient.post("/images/recognize", headers=json_headers, content=b'{"image_id": "' + b"a" * 8000 + b'"}')
    assert r.status_code == 413 and code(r) == "TOO_LARGE"
    r = await rclient.post("/images/recognize", headers=user.headers, files={"other": ("a.jpg", jpeg(), "image/jpeg")})
    assert r.status_code == 422 and code(r) == "VALIDATION_ERROR"
    assert await remaining(core_db, user) == 10


# ----------------------------------------------------------------------- the model's reply
def test_reply_parsing_is_defensive():
    fenced = 'Sure!\n```json\n{"description": "A cat.", "tags": ["Cat", "cat", 3], "titles": "Cats"}\n```'
    seen = parse_reply(fenced)
    assert (seen.description, seen.tags, seen.titles, seen.characters) == ("A cat.", ["cat", "3"], ["Cats"], [])
    seen = parse_reply('{"description": {"x": 1}, "titles": [{"name": "Star  Wars"}, null, true], "characters": 7}')
    assert (seen.description, seen.titles, seen.characters) == ("", ["Star Wars"], ["7"])
    seen = parse_reply("I think this is a sunset over the sea. {not json")
    assert seen.description == "I think this is a sunset over the sea. {not json" and seen.titles == []
    seen = parse_reply('["a list"] then {"description": "second", "characters": ["' + "x" * 500 + '"]}')
    assert seen.description == "second" and len(seen.characters[0]) == 120
    assert parse_reply("").description == ""
    many = parse_reply('{"titles": [' + ",".join(f'"t{i}"' for i in range(30)) + "]}")
    assert len(many.titles) == 5


async def test_literal_image_paths_answer_405_with_only_post(client, new_user):
    """/images/{image_id:uuid}: /images/upload and /images/recognize are not image ids, so other
    methods there are 405 with `Allow: POST` (not a 404 for an image called "recognize")."""
    user = new_user()
    for path in ("/images/recognize", "/images/upload"):
        for method in ("GET", "DELETE", "OPTIONS"):
            r = await client.request(method, path, headers=user.headers)
            assert r.status_code == 405 and r.headers["allow"] == "POST", (method, path, r.text)
    assert (await client.get("/images/not-a-uuid", headers=user.headers)).status_code == 404
