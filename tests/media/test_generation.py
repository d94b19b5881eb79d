"""Image generation (POST /images/generate, GET /images/jobs/{id}) through the real provider SDKs
(google-genai, replicate, openai) against the sandbox's protocol servers, on real PostgreSQL,
Redis, RabbitMQ and Azurite; the quota through Payment's SQL functions in the core database."""

from __future__ import annotations

import asyncio
import io
import uuid

import asyncpg
import httpx
import pytest
import pytest_asyncio
from PIL import Image

from media_service.repositories import jobs as jobs_repo
from sandbox.images_api import make_png
from sandbox.testing import DUMMY_KEYS
from shared.bus import EventPublisher
from shared.events import make_event
from shared.migrate import migrate
from shared.quota import QuotaClient

KEYS = {k: DUMMY_KEYS[k] for k in ("OPENAI_API_KEY", "GEMINI_API_KEY", "VERTEX_API_KEY", "REPLICATE_API_TOKEN")}
GEN = {
    **KEYS,
    "media_provider_timeout_seconds": 2,
    "media_replicate_poll_seconds": 0.05,
    # Jobs are taken up at start-up and when this app submits one (tests start other apps to resume jobs).
    "media_job_scan_seconds": 3600,
}
PRO, MAX = 1, 2


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def core_db(service_env):
    await migrate(service_env["DATABASE_URL"], "payment")
    pool = await asyncpg.create_pool(service_env["DATABASE_URL"], min_size=1, max_size=4)
    yield pool
    await pool.close()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def gen(make_client, core_db):
    async with make_client("media", **GEN) as c:
        yield c


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def media_pool(service_env):
    pool = await asyncpg.create_pool(service_env["MEDIA_DATABASE_URL"], min_size=1, max_size=2)
    yield pool
    await pool.close()


@pytest.fixture(autouse=True)
def _clean_sandbox(sandbox):
    sandbox.control.clear_faults()
    sandbox.control._call("DELETE", "/_sandbox/latency")
    sandbox.control.config(replicate_prediction_seconds=0, replicate_max_wait_seconds=60, broken_images=[])
    yield
    sandbox.control.clear_faults()


class User:
    def __init__(self, tokens):
        self.id = str(uuid.uuid4())
        self.headers = tokens.headers(tokens.user(self.id))


@pytest.fixture
def user(tokens, core_db):
    """`await user(tier)`: a user whose subscription (and quota period) is at `tier`."""

    async def _make(tier: int = PRO) -> User:
        u = User(tokens)
        if tier:
            await core_db.execute(
                """
                INSERT INTO subscriptions (user_id, source, external_id, tier, status, current_period_end,
                                           source_updated_at)
                VALUES ($1::uuid, 'stripe', $2, $3, 'active', now() + interval '1 month', now())
                """,
                u.id,
                f"sub_test_{uuid.uuid4().hex[:12]}",
                tier,
            )
            await core_db.execute("SELECT quota_reset($1::uuid, $2, now() + interval '1 month', 'test')", u.id, tier)
        return u

    return _make


async def image_quota(core_db, user_id: str) -> int:
    return await core_db.fetchval("SELECT quota_image_generation FROM user_quotas WHERE user_id = $1::uuid", user_id)


async def held(core_db, user_id: str) -> int:
    return await core_db.fetchval(
        "SELECT count(*) FROM quota_reservations WHERE user_id = $1::uuid AND state = 'held'", user_id
    )


async def settled_at(core_db, user_id: str, quota: int, timeout: float = 15.0) -> None:
    """A job's status is written before its reservation is settled or released: wait for both."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not (await held(core_db, user_id) == 0 and await image_quota(core_db, user_id) == quota):
        assert asyncio.get_running_loop().time() < deadline, (
            await held(core_db, user_id),
            await image_quota(core_db, user_id),
        )
        await asyncio.sleep(0.05)


def requests_since(sandbox, mark: int, provider: str) -> list[dict]:
    return sandbox.control.requests(provider=provider, since=mark)


def mark(sandbox) -> int:
    last = sandbox.control._call("GET", "/_sandbox/requests", params={"limit": 1})["data"]
    return last[-1]["id"] if last else 0


PROVIDER_PATHS = {
    "imagen": ("genai", "/v1beta1/publishers/google/models/imagen-4.0-generate-001:predict"),
    "gemini": ("genai", ":generateContent"),
    "replicate": ("replicate", "/v1/models/black-forest-labs/flux-schnell/predictions"),
    "openai": ("openai", "/images/generations"),
}


@pytest.mark.parametrize("provider", list(PROVIDER_PATHS))
async def test_each_provider_generates_through_its_sdk(gen, user, core_db, sandbox, provider):
    u = await user(PRO)
    since = mark(sandbox)
    body = {"prompt": f"a lighthouse at dusk ({provider})", "count": 2, "aspect_ratio": "16:9", "provider": provider}
    r = await gen.post("/images/generate", json=body, headers=u.headers)
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["remaining_quota"] == 3
    assert len(out["images"]) == 2
    sandbox_provider, path = PROVIDER_PATHS[provider]
    calls = [c for c in requests_since(sandbox, since, sandbox_provider) if path in c["path"]]
    assert calls and all(c["status"] in (200, 201) for c in calls)
    for image in out["images"]:
        assert image["provider"] == provider and image["model"] and image["prompt"] == body["prompt"]
        assert image["mime"] == "image/png" and image["width"] > image["height"]  # 16:9
        async with httpx.AsyncClient() as http:
            blob = await http.get(image["url"])
            thumb = await http.get(image["thumbnail_url"])
        assert blob.status_code == 200 and Image.open(io.BytesIO(blob.content)).size == (
            image["width"],
            image["height"],
        )
        assert thumb.status_code == 200 and thumb.content[:4] == b"RIFF"
        got = await gen.get(f"/images/{image['id']}", headers=u.headers)
        assert got.status_code == 200 and got.json()["provider"] == provider
    assert await image_quota(core_db, u.id) == 3 and await held(core_db, u.id) == 0


async def test_the_same_prompt_gives_the_same_image(gen, user):
    u = await user(MAX)
    body = {"prompt": "a red bicycle", "provider": "openai"}
    first = (await gen.post("/images/generate", json=body, headers=u.headers)).json()
    second = (await gen.post("/images/generate", json=body, headers=u.headers)).json()
    assert first["remaining_quota"] == -1
    assert first["images"][0]["id"] != second["images"][0]["id"]
    # Content-addressed: the same bytes, the same blob.
    assert first["images"][0]["url"].split("?")[0] == second["images"][0]["url"].split("?")[0]
    assert make_png("x") == make_png("x") != make_png("y")


async def test_a_clean_provider_png_is_stored_as_sent(gen, user):
    """The sandbox's PNGs hold nothing but their image (imaging.is_clean_png): stored byte for byte,
    not re-encoded."""
    u = await user(MAX)
    r = await gen.post("/images/generate", json={"prompt": "a clean harbour", "provider": "openai"}, headers=u.headers)
    assert r.status_code == 201, r.text
    image = r.json()["images"][0]
    async with httpx.AsyncClient() as http:
        stored = (await http.get(image["url"])).content
    assert stored == make_png("a clean harbour", model="gpt-image-1", index=0, aspect_ratio="1:1")
    assert image["bytes"] == len(stored) and image["mime"] == "image/png"


async def test_character_and_series_add_context_to_the_prompt(gen, user, sandbox):
    u = await user(PRO)
    since = mark(sandbox)
    body = {"prompt": "a duel on a bridge", "character": "Zorro", "series": "The Mask of Zorro", "provider": "openai"}
    r = await gen.post("/images/generate", json=body, headers=u.headers)
    assert r.status_code == 201, r.text
    sent = [c for c in requests_since(sandbox, since, "openai") if c["path"] == "/images/generations"][0]["body"]
    assert (
        "a duel on a bridge" in sent["prompt"] and "Zorro" in sent["prompt"] and "The Mask of Zorro" in sent["prompt"]
    )
    assert r.json()["images"][0]["prompt"] == "a duel on a bridge"


async def test_falls_back_when_the_first_provider_fails(gen, user, core_db, sandbox):
    u = await user(PRO)
    sandbox.control.fault("genai", 503, path=":predict")
    r = await gen.post("/images/generate", json={"prompt": "a castle", "provider": "imagen"}, headers=u.headers)
    assert r.status_code == 201, r.text
    assert r.json()["images"][0]["provider"] == "gemini"  # next in MEDIA_IMAGE_PROVIDERS order
    assert await image_quota(core_db, u.id) == 4


async def test_falls_back_when_a_provider_sends_a_broken_image(gen, user, core_db, sandbox):
    u = await user(PRO)
    sandbox.control.config(broken_images=["genai"])  # Imagen and Gemini both send truncated PNGs
    r = await gen.post("/images/generate", json={"prompt": "a broken vase", "count": 2}, headers=u.headers)
    assert r.status_code == 201, r.text
    assert {i["provider"] for i in r.json()["images"]} == {"replicate"} and len(r.json()["images"]) == 2
    assert await image_quota(core_db, u.id) == 3


async def test_falls_back_on_a_timeout(gen, user, sandbox):
    u = await user(PRO)
    sandbox.control.fault("replicate", delay_seconds=4, path="/predictions")
    r = await gen.post("/images/generate", json={"prompt": "a slow fox", "provider": "replicate"}, headers=u.headers)
    assert r.status_code == 201, r.text
    assert r.json()["images"][0]["provider"] == "imagen"


async def test_replicate_prediction_polled_until_it_succeeds(gen, user, sandbox):
    u = await user(PRO)
    sandbox.control.config(replicate_prediction_seconds=0.3, replicate_max_wait_seconds=0.1)
    since = mark(sandbox)
    r = await gen.post("/images/generate", json={"prompt": "a slow owl", "provider": "replicate"}, headers=u.headers)
    assert r.status_code == 201, r.text
    polls = [c for c in requests_since(sandbox, since, "replicate") if c["method"] == "GET"]
    assert polls, "the prediction was not polled"


async def test_every_provider_failing_is_503_and_charges_nothing(gen, user, core_db, sandbox):
    u = await user(PRO)
    sandbox.control.fault("genai", 500, count=None)
    sandbox.control.fault("replicate", 503, count=None)
    sandbox.control.fault("openai", 429, count=None, path="/images/generations")
    r = await gen.post("/images/generate", json={"prompt": "a storm", "count": 3}, headers=u.headers)
    assert r.status_code == 503, r.text
    detail = r.json()["detail"]
    assert detail["code"] == "PROVIDER_UNAVAILABLE"
    assert [a["provider"] for a in detail["attempts"]] == ["imagen", "gemini", "replicate", "openai"]
    assert await image_quota(core_db, u.id) == 5 and await held(core_db, u.id) == 0
    sandbox.control.clear_faults()
    r = await gen.post("/images/generate", json={"prompt": "a storm"}, headers=u.headers)
    assert r.status_code == 201 and r.json()["remaining_quota"] == 4


async def test_ten_concurrent_generations_with_three_left(gen, user, core_db):
    u = await user(PRO)
    await core_db.execute("UPDATE user_quotas SET quota_image_generation = 3 WHERE user_id = $1::uuid", u.id)
    answers = await asyncio.gather(
        *(
            gen.post("/images/generate", json={"prompt": f"a cat number {i}", "provider": "openai"}, headers=u.headers)
            for i in range(10)
        )
    )
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201] * 3 + [402] * 7, [a.text for a in answers]
    assert {a.json()["detail"]["code"] for a in answers if a.status_code == 402} == {"INSUFFICIENT_QUOTA"}
    assert await image_quota(core_db, u.id) == 0 and await held(core_db, u.id) == 0
    listed = (await gen.get("/images", headers=u.headers)).json()["images"]
    assert len(listed) == 3


async def test_a_generated_image_and_its_thumbnail_hold_no_lease_once_stored(gen, user, media_pool):
    """The thumbnail is leased on its own, once made (the original meanwhile being written): the
    row's statement gives both leases back, and each blob is referenced once."""
    u = await user(MAX)
    r = await gen.post("/images/generate", json={"prompt": "a lease handed back", "count": 2}, headers=u.headers)
    assert r.status_code == 201, r.text
    rows = await media_pool.fetch(
        "SELECT b.name, b.leases, b.refs FROM media_metadata m"
        " JOIN media_blobs b ON b.name IN (m.blob_name, m.thumbnail_name) WHERE m.user_id = $1::uuid",
        u.id,
    )
    assert len(rows) == 4 and {(r["leases"], r["refs"]) for r in rows} == {(0, 1)}, [dict(r) for r in rows]
    assert sum(r["name"].startswith("thumbnails/") for r in rows) == 2


async def test_generation_that_outlives_its_lease_stores_nothing_and_charges_nothing(
    make_client, user, core_db, media_pool
):
    """Leases shorter than the request: the original's (taken while the thumbnail is made) and the
    thumbnail's (taken once it is made) have expired at the row's write, which is refused; the
    request starts its storage again once, then answers 503. No row, the reservation released."""
    u = await user(PRO)
    async with make_client("media", **GEN, media_blob_lease_seconds=0.001) as app:
        body = {"prompt": "a brief candle", "provider": "openai"}
        r = await app.post("/images/generate", json=body, headers=u.headers)
    assert r.status_code == 503 and r.json()["detail"]["code"] == "STORAGE_UNAVAILABLE", r.text
    assert await media_pool.fetchval("SELECT count(*) FROM media_metadata WHERE user_id = $1::uuid", u.id) == 0
    assert await image_quota(core_db, u.id) == 5 and await held(core_db, u.id) == 0


async def test_free_tier_is_refused(gen, user, core_db, sandbox):
    u = await user(0)
    since = mark(sandbox)
    r = await gen.post("/images/generate", json={"prompt": "a tree"}, headers=u.headers)
    assert r.status_code == 402 and r.json()["detail"]["code"] == "INSUFFICIENT_TIER"
    r = await gen.post("/images/generate", json={"prompt": "a tree"}, headers={**u.headers, "Prefer": "respond-async"})
    assert r.status_code == 402 and r.json()["detail"]["code"] == "INSUFFICIENT_TIER"
    assert not requests_since(sandbox, since, "genai") and not requests_since(sandbox, since, "openai")


async def test_a_rejected_prompt_charges_nothing_and_calls_no_provider(gen, user, core_db, sandbox):
    u = await user(PRO)
    since = mark(sandbox)
    r = await gen.post("/images/generate", json={"prompt": "sandbox-flag a fight", "count": 2}, headers=u.headers)
    assert r.status_code == 422, r.text
    assert r.json()["detail"]["code"] == "PROMPT_REJECTED" and r.json()["detail"]["categories"] == ["violence"]
    # The context is moderated too.
    r = await gen.post(
        "/images/generate", json={"prompt": "a picnic", "character": "sandbox-flag:harassment"}, headers=u.headers
    )
    assert r.status_code == 422 and r.json()["detail"]["code"] == "PROMPT_REJECTED"
    assert await image_quota(core_db, u.id) == 5 and await held(core_db, u.id) == 0
    calls = requests_since(sandbox, since, "openai")
    assert calls and all(c["path"] == "/moderations" for c in calls)
    assert not requests_since(sandbox, since, "genai") and not requests_since(sandbox, since, "replicate")


async def test_moderation_down_fails_closed(gen, user, core_db, sandbox):
    u = await user(PRO)
    sandbox.control.fault("openai", 500, path="/moderations")
    r = await gen.post("/images/generate", json={"prompt": "a river"}, headers=u.headers)
    assert r.status_code == 503 and r.json()["detail"]["code"] == "MODERATION_UNAVAILABLE"
    assert await image_quota(core_db, u.id) == 5 and await held(core_db, u.id) == 0


async def test_refusals_keep_their_order_while_the_quota_is_reserved_beside_moderation(gen, user, core_db, sandbox):
    """The quota is reserved while moderation runs; a refused prompt still answers 422 (not the
    402 of a spent quota), and a spent quota 402 only for a prompt that passed."""
    u = await user(PRO)
    await core_db.execute("UPDATE user_quotas SET quota_image_generation = 0 WHERE user_id = $1::uuid", u.id)
    r = await gen.post("/images/generate", json={"prompt": "sandbox-flag a fight"}, headers=u.headers)
    assert r.status_code == 422 and r.json()["detail"]["code"] == "PROMPT_REJECTED", r.text
    r = await gen.post("/images/generate", json={"prompt": "a quiet lake"}, headers=u.headers)
    assert r.status_code == 402 and r.json()["detail"]["code"] == "INSUFFICIENT_QUOTA", r.text
    await core_db.execute("UPDATE user_quotas SET quota_image_generation = 2 WHERE user_id = $1::uuid", u.id)
    since = mark(sandbox)
    for _ in range(3):
        r = await gen.post("/images/generate", json={"prompt": "sandbox-flag a fight", "count": 2}, headers=u.headers)
        assert r.status_code == 422, r.text
    assert await image_quota(core_db, u.id) == 2 and await held(core_db, u.id) == 0
    assert not requests_since(sandbox, since, "genai") and not requests_since(sandbox, since, "replicate")
    r = await gen.post("/images/generate", json={"prompt": "a quiet lake", "count": 2}, headers=u.headers)
    assert r.status_code == 201 and r.json()["remaining_quota"] == 0, r.text


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"prompt": ""},
        {"prompt": "   "},
        {"prompt": "x" * 1001},
        {"prompt": "a", "count": 0},
        {"prompt": "a", "count": 5},
        {"prompt": "a", "aspect_ratio": "2:1"},
        {"prompt": "a", "provider": "midjourney"},
        {"prompt": 5},
        {"prompt": "a\u0000b"},
        {"prompt": "a", "style": "noir\u0000"},
        [],
    ],
)
async def test_bad_input_is_422_and_changes_nothing(gen, user, core_db, body):
    u = await user(PRO)
    r = await gen.post("/images/generate", json=body, headers=u.headers)
    assert r.status_code == 422, r.text
    assert r.json()["detail"]["code"] == "VALIDATION_ERROR"
    assert await image_quota(core_db, u.id) == 5


async def test_not_json_and_no_token(gen, user):
    u = await user(PRO)
    r = await gen.post(
        "/images/generate", content=b"{not json", headers={**u.headers, "content-type": "application/json"}
    )
    assert 400 <= r.status_code < 500
    r = await gen.post("/images/generate", json={"prompt": "a"})
    assert r.status_code == 401
    r = await gen.post("/images/generate", json={"prompt": "a"}, headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401
    r = await gen.get(f"/images/jobs/{uuid.uuid4()}")
    assert r.status_code == 401


async def poll(client, job_id: str, headers, until=("succeeded", "failed"), timeout: float = 60.0) -> dict:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        r = await client.get(f"/images/jobs/{job_id}", headers=headers)
        assert r.status_code == 200, r.text
        if r.json()["status"] in until:
            return r.json()
        assert asyncio.get_running_loop().time() < deadline, r.json()
        await asyncio.sleep(0.05)


async def test_async_job(gen, user, core_db, tokens):
    u = await user(PRO)
    r = await gen.post(
        "/images/generate",
        json={"prompt": "a lantern", "count": 2, "provider": "imagen"},
        headers={**u.headers, "Prefer": "respond-async"},
    )
    assert r.status_code == 202, r.text
    assert r.headers["preference-applied"] == "respond-async"
    job = r.json()
    assert job["status"] == "queued"
    done = await poll(gen, job["job_id"], u.headers)
    assert done["status"] == "succeeded" and len(done["images"]) == 2
    assert done["images"][0]["provider"] == "imagen"
    await settled_at(core_db, u.id, 3)
    other = User(tokens)
    assert (await gen.get(f"/images/jobs/{job['job_id']}", headers=other.headers)).status_code == 404
    assert (await gen.get(f"/images/jobs/{uuid.uuid4()}", headers=u.headers)).status_code == 404
    r = await gen.get("/images/jobs/not-a-uuid", headers=u.headers)
    assert r.status_code == 404 and r.json()["detail"]["code"] == "JOB_NOT_FOUND"


async def test_async_job_that_fails_is_released(gen, user, core_db, sandbox):
    u = await user(PRO)
    sandbox.control.fault("genai", 500, count=None)
    sandbox.control.fault("replicate", 503, count=None)
    sandbox.control.fault("openai", 500, count=None, path="/images/generations")
    r = await gen.post("/images/generate", json={"prompt": "a wreck"}, headers={**u.headers, "Prefer": "respond-async"})
    assert r.status_code == 202
    done = await poll(gen, r.json()["job_id"], u.headers)
    assert done["status"] == "failed" and done["error"]["code"] == "PROVIDER_UNAVAILABLE"
    assert "images" not in done or done["images"] is None
    await settled_at(core_db, u.id, 5)


async def test_a_queued_job_left_behind_runs_at_start_up(make_client, user, core_db, media_pool, service_env):
    """A job whose process died right after the request committed it: the next start takes it up,
    and the user is charged exactly once."""
    u = await user(PRO)
    quota = QuotaClient(core_db)
    reservation = await quota.reserve(u.id, "image_gen", 1)
    job_id = uuid.uuid4()
    request = {"prompt": "a ghost ship", "count": 1, "aspect_ratio": "1:1", "provider": "openai"}
    async with media_pool.acquire() as conn:
        await jobs_repo.insert_job(conn, job_id, u.id, {**request, "text": "a ghost ship"}, reservation.reservation_id)
    async with make_client("media", **GEN) as fresh:
        done = await poll(fresh, str(job_id), u.headers)
        assert done["status"] == "succeeded" and done["images"][0]["prompt"] == "a ghost ship"
        await settled_at(core_db, u.id, 4)


async def test_a_job_interrupted_by_a_restart_completes(make_client, user, core_db, media_pool, sandbox):
    u = await user(PRO)
    sandbox.control.config(replicate_prediction_seconds=60)  # the provider is slow: the job is mid-call
    async with make_client("media", **GEN) as first:
        r = await first.post(
            "/images/generate",
            json={"prompt": "a comet", "provider": "replicate"},
            headers={**u.headers, "Prefer": "respond-async"},
        )
        assert r.status_code == 202
        job_id = r.json()["job_id"]
        await poll(first, job_id, u.headers, until=("running",))
    row = await media_pool.fetchrow("SELECT status, lease_until FROM generation_jobs WHERE id = $1::uuid", job_id)
    assert row["status"] == "running" and row["lease_until"] is None  # given up by the stopping process
    assert await held(core_db, u.id) == 1  # the reservation stays with the job
    sandbox.control.config(replicate_prediction_seconds=0)
    async with make_client("media", **GEN) as second:
        done = await poll(second, job_id, u.headers)
        assert done["status"] == "succeeded" and done["images"][0]["provider"] == "replicate"
        await settled_at(core_db, u.id, 4)


async def test_image_generated_event_and_user_deleted(gen, user, media_pool, service_env, event_spy, eventually):
    u = await user(PRO)
    async with event_spy(["image.generated"]) as spy:
        r = await gen.post("/images/generate", json={"prompt": "a kite", "provider": "openai"}, headers=u.headers)
        assert r.status_code == 201
        image = r.json()["images"][0]
        (event,) = await spy.wait_for("image.generated", image_id=image["id"])
    assert event.data["provider"] == "openai" and event.data["model"] == "gpt-image-1"
    assert event.data["prompt"] == "a kite" and event.user_id == u.id
    r = await gen.post("/images/generate", json={"prompt": "a kite"}, headers={**u.headers, "Prefer": "respond-async"})
    job_id = r.json()["job_id"]
    await poll(gen, job_id, u.headers)
    publisher = EventPublisher(service_env["RABBITMQ_URL"], "scenextras.events", name="test-publisher")
    try:
        await publisher.publish(make_event("user.deleted", u.id, {}))
    finally:
        await publisher.close()

    async def erased():
        jobs = await media_pool.fetchval("SELECT count(*) FROM generation_jobs WHERE user_id = $1::uuid", u.id)
        rows = await media_pool.fetchval("SELECT count(*) FROM media_metadata WHERE user_id = $1::uuid", u.id)
        return jobs == 0 and rows == 0

    await eventually(erased, timeout=15, interval=0.2)
    # The deleted user's still-valid token is refused from now on (shared/tombstones.py).
    r = await gen.get(f"/images/jobs/{job_id}", headers=u.headers)
    assert r.status_code == 401 and r.json()["detail"]["code"] == "USER_DELETED"
