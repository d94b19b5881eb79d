"""Faults across Media, Community and Analytics (issue 18), on real processes and real infrastructure:
Payment (the quota functions and the expiry sweep), Media, Community and Analytics as uvicorn
processes on this module's own fleet. Users are minted tokens (Auth is not needed for these flows);
a Pro user gets its subscription row and quota period written the way Payment's webhook would.

- Azurite cut for Media only (a TCP proxy in front of the shared Azurite, so it stays up for others);
- image and LLM providers failing mid request (sandbox faults);
- the Analytics consumer's AMQP connections closed through the management API (this vhost only);
- Community SIGKILLed mid story generation and started again on the same port;
- pg_terminate_backend on the community database's backends during concurrent votes.
"""

from __future__ import annotations

import asyncio
import functools
import io
import time
import uuid
from urllib.parse import quote

import asyncpg
import httpx
import orjson
import pytest
import pytest_asyncio

from shared.bus.publisher import EventPublisher
from shared.events import make_event
from shared.testing import poll
from shared.testing.env import _rabbit, queue_info
from shared.testing.plugin import Tokens
from shared.testing.processes import ServiceProcess
from shared.testing.proxy import ThreadedTcpProxy
from tests.e2e.conftest import counted, wait_ready
from tests.e2e.fans import Clients
from tests.e2e.fleets import running_fleet
from tests.e2e.test_faults import CHECKER, kill_connections

SERVICES = ("payment", "media", "community", "analytics")
PRO = 1


@pytest.fixture(scope="module")
def azurite_proxy(infra):
    """Media reaches Azurite through this proxy: cutting it is "Azurite down" for Media alone."""
    endpoint = next(p for p in infra.azure_storage.split(";") if p.startswith("BlobEndpoint="))
    host_port = endpoint.split("//", 1)[1].split("/", 1)[0]
    host, port = host_port.split(":")
    proxy = ThreadedTcpProxy(host, int(port)).start()
    proxy.blob_host_port = host_port
    yield proxy
    proxy.close()


@pytest.fixture(scope="module")
def fleet(e2e_env, sandbox_handle, infra, azurite_proxy, tmp_path_factory):
    storage = e2e_env["AZURE_STORAGE_CONNECTION_STRING"].replace(
        f"//{azurite_proxy.blob_host_port}/", f"//127.0.0.1:{azurite_proxy.port}/"
    )
    assert storage != e2e_env["AZURE_STORAGE_CONNECTION_STRING"]
    env = {
        **e2e_env,
        **sandbox_handle.env(keys=True),
        "AZURE_STORAGE_CONNECTION_STRING": storage,
        # Short leases and a fast sweep so the orphan check takes seconds, not minutes.
        "MEDIA_BLOB_LEASE_SECONDS": "3",
        "MEDIA_SWEEP_INTERVAL_SECONDS": "1",
    }
    with running_fleet(env, sandbox_handle, infra, tmp_path_factory.mktemp("fleet-mca"), services=SERVICES) as f:
        try:
            yield f
        finally:
            sandbox_handle.control.clear_faults()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def http(fleet):
    clients = Clients({name: fleet.url(name) for name in fleet.procs})
    yield clients
    await clients.aclose()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def dbs(e2e_env):
    """Direct pools, named so the connection killer spares them."""
    settings = {"application_name": CHECKER}
    out = {}
    for name, var in (
        ("core", "DATABASE_URL"),
        ("media", "MEDIA_DATABASE_URL"),
        ("community", "COMMUNITY_DATABASE_URL"),
        ("analytics", "ANALYTICS_DATABASE_URL"),
    ):
        out[name] = await asyncpg.create_pool(e2e_env[var], min_size=1, max_size=2, server_settings=settings)
    yield out
    for pool in out.values():
        await pool.close()


class User:
    def __init__(self, tokens: Tokens, tier: int = 0):
        self.id = str(uuid.uuid4())
        self.headers = tokens.headers(tokens.user(self.id, tier=tier))


async def new_user(core: asyncpg.Pool, tier: int = 0) -> User:
    user = User(Tokens(), tier)
    if tier:
        await core.execute(
            "INSERT INTO subscriptions (user_id, source, external_id, tier, status, current_period_end,"
            " source_updated_at) VALUES ($1::uuid, 'stripe', $2, $3, 'active', now() + interval '1 month', now())",
            user.id,
            f"sub_test_{uuid.uuid4().hex[:12]}",
            tier,
        )
        await core.execute("SELECT quota_reset($1::uuid, $2, now() + interval '1 month', 'test')", user.id, tier)
    return user


async def remaining(core: asyncpg.Pool, user: User, quota_type: str) -> int:
    return await core.fetchval(
        "SELECT remaining FROM quota_snapshot($1::uuid) WHERE quota_type = $2", user.id, quota_type
    )


async def held(core: asyncpg.Pool, user: User) -> int:
    return await core.fetchval(
        "SELECT count(*) FROM quota_reservations WHERE user_id = $1::uuid AND state = 'held'", user.id
    )


until = functools.partial(poll.eventually, timeout=20.0, interval=0.1)


def png(rgb: tuple[int, int, int]) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (32, 24), rgb).save(out, format="PNG")
    return out.getvalue()


def sse(text: str) -> list[tuple[str, dict]]:
    out = []
    for block in text.split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if line and not line.startswith(":"))
        if "event" in lines:
            out.append((lines["event"], orjson.loads(lines["data"])))
    return out


def storage_blobs(conn_string: str, container: str) -> set[str]:
    from azure.storage.blob import BlobServiceClient

    with BlobServiceClient.from_connection_string(conn_string) as service:
        return {b.name for b in service.get_container_client(container).list_blobs()}


async def ready_draft(http, user: User) -> str:
    r = await http.community.post("/stories", json={}, headers=user.headers)
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    r = await http.community.put(
        f"/stories/{sid}/universe",
        json={"custom": {"name": "Skyhold", "description": "Sky city."}},
        headers=user.headers,
    )
    assert r.status_code == 200, r.text
    r = await http.community.put(
        f"/stories/{sid}/characters", json={"characters": [{"name": "Aria", "series": "Skyhold"}]}, headers=user.headers
    )
    assert r.status_code == 200, r.text
    return sid


# 1. Azurite down during an upload ----------------------------------------------------------------


async def test_azurite_down_during_upload(fleet, http, dbs, azurite_proxy, infra, e2e_env):
    """Storage unreachable: a clear 503 STORAGE_UNAVAILABLE, no media row; back up: uploads work,
    and once the failed upload's lease is over the sweep leaves no unreferenced blob."""
    media = dbs["media"]
    user = await new_user(dbs["core"])
    before = await media.fetchval("SELECT count(*) FROM media_metadata WHERE user_id = $1::uuid", user.id)
    container = e2e_env["AZURE_STORAGE_CONTAINER"]
    # The container outlives a run that failed half-way: only blobs new since now are judged.
    existing = await asyncio.to_thread(storage_blobs, infra.azure_storage, container)
    azurite_proxy.cut()
    try:
        started = time.monotonic()
        r = await http.media.post(
            "/images/upload",
            files={"file": ("down.png", png((10, 200, 30)), "image/png")},
            data={"purpose": "attachment"},
            headers=user.headers,
        )
        took = time.monotonic() - started
    finally:
        azurite_proxy.restore()
    assert r.status_code == 503, r.text
    assert r.json()["detail"]["code"] == "STORAGE_UNAVAILABLE" and r.json()["detail"]["message"]
    assert took < 30, took
    assert await media.fetchval("SELECT count(*) FROM media_metadata WHERE user_id = $1::uuid", user.id) == before

    r = await http.media.post(
        "/images/upload",
        files={"file": ("up.png", png((10, 200, 31)), "image/png")},
        data={"purpose": "attachment"},
        headers=user.headers,
    )
    assert r.status_code == 201, r.text
    assert await media.fetchval("SELECT count(*) FROM media_metadata WHERE user_id = $1::uuid", user.id) == before + 1

    # No orphans after a sweep: every unreferenced registry row goes once its lease is over, and
    # every blob this test left in storage is one a media row points at.

    async def swept():
        unreferenced = await media.fetchval("SELECT count(*) FROM media_blobs WHERE refs = 0")
        return unreferenced == 0

    await until(swept, timeout=20, what="unreferenced blobs swept")
    referenced = {r["name"] for r in await media.fetch("SELECT name FROM media_blobs WHERE refs > 0")}
    in_storage = await asyncio.to_thread(storage_blobs, infra.azure_storage, container) - existing
    assert in_storage and in_storage <= referenced, in_storage - referenced


# 2. Providers failing mid generation -------------------------------------------------------------


async def test_image_providers_failing_release_the_quota(fleet, http, dbs):
    """Every image provider fails (errors, a dropped connection): 503 PROVIDER_UNAVAILABLE with
    what each answered, the Pro user's image quota unchanged, nothing held, no image row."""
    core = dbs["core"]
    user = await new_user(core, PRO)
    left = await remaining(core, user, "image_gen")
    assert left > 0
    control = fleet.sandbox.control
    control.fault("genai", 500, count=None)
    control.fault("replicate", count=None, drop_connection=True)
    control.fault("openai", 503, count=None, path="/images/generations")
    try:
        r = await http.media.post(
            "/images/generate", json={"prompt": "A lighthouse at dusk", "count": 2}, headers=user.headers
        )
    finally:
        control.clear_faults()
    assert r.status_code == 503, r.text
    assert r.json()["detail"]["code"] == "PROVIDER_UNAVAILABLE" and r.json()["detail"]["attempts"]
    await until(lambda: _zero_held(core, user), what="reservation released")
    assert await remaining(core, user, "image_gen") == left
    r = await http.payment.get("/quota", headers=user.headers)
    assert r.status_code == 200 and r.json()["quotas"]["image_gen"]["remaining"] == left, r.text
    assert await dbs["media"].fetchval("SELECT count(*) FROM media_metadata WHERE user_id = $1::uuid", user.id) == 0
    # And the next generation works and is charged once.
    r = await http.media.post("/images/generate", json={"prompt": "A lighthouse at dawn"}, headers=user.headers)
    assert r.status_code == 201, r.text
    await until(lambda: _zero_held(core, user), what="reservation settled")
    assert await remaining(core, user, "image_gen") == left - 1


async def test_storage_failing_after_the_provider_answered_releases_the_quota(fleet, http, dbs, azurite_proxy):
    """The provider made the images, then storing them fails (Azurite cut mid generation): 503
    STORAGE_UNAVAILABLE, nothing charged, nothing held, no image row."""
    core = dbs["core"]
    user = await new_user(core, PRO)
    left = await remaining(core, user, "image_gen")
    azurite_proxy.cut()
    try:
        r = await http.media.post("/images/generate", json={"prompt": "A harbour at night"}, headers=user.headers)
    finally:
        azurite_proxy.restore()
    assert r.status_code == 503, r.text
    assert r.json()["detail"]["code"] == "STORAGE_UNAVAILABLE", r.text
    await until(lambda: _zero_held(core, user), what="reservation released")
    assert await remaining(core, user, "image_gen") == left
    assert await dbs["media"].fetchval("SELECT count(*) FROM media_metadata WHERE user_id = $1::uuid", user.id) == 0


async def _zero_held(core, user) -> bool:
    return await held(core, user) == 0


async def test_llm_failing_mid_story_stream_releases_the_story_quota(fleet, http, dbs):
    """The model's stream breaks after a few chunks: one `error` frame after the tokens, no new
    version, the `story` quota given back (the user's only free story can be generated again)."""
    core = dbs["core"]
    user = await new_user(core)
    sid = await ready_draft(http, user)
    version = (await http.community.get(f"/stories/{sid}", headers=user.headers)).json()["version"]
    control = fleet.sandbox.control
    control.fault("*", 500, count=None, after_chunks=3)
    try:
        r = await http.community.post(
            f"/stories/{sid}/generate", json={"length": "short"}, headers=user.headers, timeout=60
        )
    finally:
        control.clear_faults()
    assert r.status_code == 200, r.text
    frames = sse(r.text)
    kinds = [k for k, _ in frames]
    assert kinds[-1] == "error" and "done" not in kinds, kinds
    assert "token" in kinds, "the stream did not fail mid-way (no token before the error)"
    assert frames[-1][1]["code"] and frames[-1][1]["message"]
    await until(lambda: _zero_held(core, user), what="story reservation released")
    assert await remaining(core, user, "story") == 1
    story = (await http.community.get(f"/stories/{sid}", headers=user.headers)).json()
    assert story["version"] == version
    versions = (await http.community.get(f"/stories/{sid}/versions", headers=user.headers)).json()["versions"]
    assert all(v["change"] != "generation" for v in versions)
    r = await http.community.post(f"/stories/{sid}/generate", json={"length": "short"}, headers=user.headers)
    assert r.status_code == 200 and sse(r.text)[-1][0] == "done", r.text
    assert await remaining(core, user, "story") == 0


# 3. RabbitMQ connections dropped while Analytics has a backlog -----------------------------------


def close_vhost_connections(infra, vhost: str, keep: str) -> int:
    """Close every AMQP connection of this vhost except the test's own publisher (by name)."""
    closed = 0
    with _rabbit(infra) as api:
        r = api.get(f"/vhosts/{quote(vhost, safe='')}/connections")
        r.raise_for_status()
        for c in r.json():
            if (c.get("client_properties") or {}).get("connection_name") == keep:
                continue
            d = api.delete(f"/connections/{quote(c['name'], safe='')}", headers={"X-Reason": "fault test"})
            if d.status_code in (204, 404):
                closed += d.status_code == 204
    return closed


async def test_analytics_counts_each_event_once_across_dropped_connections(fleet, dbs, infra, e2e_env):
    """A backlog of `message.sent` events (some published twice, as a relay retry would) while
    every connection of the vhost is closed, repeatedly: once drained, each event is in
    `analytics_events` once and the user's message count equals the distinct events."""
    analytics = dbs["analytics"]
    vhost = e2e_env["REDIS_PREFIX"]
    user_id = str(uuid.uuid4())
    conversation = str(uuid.uuid4())
    events = [
        make_event(
            "message.sent",
            user_id,
            {
                "conversation_id": conversation,
                "message_id": str(uuid.uuid4()),
                "character": "Aria",
                "role": "assistant",
            },
        )
        for _ in range(1500)
    ]
    ids = [uuid.UUID(e.event_id) for e in events]
    items = [(e.event_id, e.event_type, e.to_bytes()) for e in events]
    items += items[:300]  # duplicates: the relay may publish an event again after a lost confirm
    publisher = EventPublisher(e2e_env["RABBITMQ_URL"], "scenextras.events", name="fault-test-publisher")
    closed = 0
    counted_at_cuts = []
    try:
        # Publish in chunks and drop every other connection of the vhost after each one, so the
        # consumer loses its channel with unacknowledged deliveries and a backlog still queued.
        for start in range(0, len(items), 300):
            assert not any(await publisher.publish_raw(items[start : start + 300], timeout=30))
            counted_at_cuts.append(await counted(analytics, ids))
            closed += await asyncio.to_thread(close_vhost_connections, infra, vhost, "fault-test-publisher")
    finally:
        await publisher.close()
    assert closed > 0
    # At least one cut landed while events were waiting: fewer counted than published by then
    # (the last chunk holds only duplicates, so a fast consumer may have caught up before it).
    published = [min(start + 300, len(ids)) for start in range(0, len(items), 300)]
    assert any(c < p for c, p in zip(counted_at_cuts, published, strict=True)), (counted_at_cuts, published)

    ids = [uuid.UUID(e.event_id) for e in events]

    async def all_counted():
        return await counted(analytics, ids) == len(ids)

    await until(all_counted, timeout=60, interval=0.5, what="every event counted")

    async def drained():
        info = queue_info(infra, vhost, "analytics_service.events") or {}
        return info.get("messages", 1) == 0 and info.get("consumers", 0) >= 1

    await until(drained, timeout=30, interval=0.3, what="queue drained and consumer back")
    rows = await analytics.fetchval("SELECT count(*) FROM analytics_events WHERE event_id = ANY($1::uuid[])", ids)
    assert rows == len(ids), f"{rows} rows for {len(ids)} events"
    messages = await analytics.fetchval("SELECT messages FROM user_analytics WHERE user_id = $1::uuid", user_id)
    assert messages == len(ids)
    dead = (queue_info(infra, vhost, "analytics_service.events.dlq") or {}).get("messages", 0)
    assert dead == 0
    for name in ("analytics", "community", "media"):
        await wait_ready(fleet.url(name), timeout=30)
    print(
        f"analytics: {len(ids)} events (+300 duplicates), counted at each cut {counted_at_cuts}, "
        f"{closed} connections closed"
    )


# 4. Community killed mid story generation --------------------------------------------------------


async def test_community_killed_mid_generation(fleet, http, dbs):
    """SIGKILL while the story streams: after the restart the draft is as it was (no half-written
    version), the `story` reservation is held (nobody settled or released it) with an expiry within
    the reservation TTL (600 s), and Payment's sweeper gives it back once expired."""
    core, community = dbs["core"], dbs["community"]
    user = await new_user(core)
    sid = await ready_draft(http, user)
    before = (await http.community.get(f"/stories/{sid}", headers=user.headers)).json()
    versions_before = await community.fetchval("SELECT count(*) FROM story_versions WHERE story_id = $1::uuid", sid)
    control = fleet.sandbox.control
    control.latency("*", per_token_seconds=0.2)
    proc = fleet.procs["community"]
    try:
        async with httpx.AsyncClient(base_url=fleet.url("community"), timeout=30, trust_env=False) as c:
            async with c.stream("POST", f"/stories/{sid}/generate", json={"length": "long"}, headers=user.headers) as r:
                assert r.status_code == 200
                lines = r.aiter_lines()
                while not (await anext(lines)).startswith("event: token"):
                    pass
                proc.proc.kill()  # SIGKILL, mid stream
                proc.proc.wait()
                with pytest.raises(httpx.HTTPError):  # the stream ends without `done` or `error`
                    while True:
                        line = await anext(lines)
                        assert not line.startswith(("event: done", "event: error")), line
    finally:
        control._call("DELETE", "/_sandbox/latency")
    assert await held(core, user) == 1
    expires_in = await core.fetchval(
        "SELECT extract(epoch FROM expires_at - now()) FROM quota_reservations"
        " WHERE user_id = $1::uuid AND state = 'held'",
        user.id,
    )
    assert 0 < expires_in <= 600, expires_in

    fleet.procs["community"] = ServiceProcess("community", fleet.env, port=proc.port, log_dir=fleet.log_dir).start(60)
    await wait_ready(fleet.url("community"), timeout=30)
    after = (await http.community.get(f"/stories/{sid}", headers=user.headers)).json()
    assert after == before
    assert (
        await community.fetchval("SELECT count(*) FROM story_versions WHERE story_id = $1::uuid", sid)
        == versions_before
    )
    # Meanwhile the reservation blocks the free user's one story: a clear 402, nothing streamed.
    r = await http.community.post(f"/stories/{sid}/generate", json={}, headers=user.headers)
    assert r.status_code == 402 and r.json()["detail"]["code"] == "INSUFFICIENT_QUOTA", r.text
    # The clock moved past the TTL (we move it, rather than wait 10 minutes): Payment's sweeper
    # (every SWEEP_INTERVAL_SECONDS) expires it and the allowance is back.
    await core.execute(
        "UPDATE quota_reservations SET expires_at = now() - interval '1 second'"
        " WHERE user_id = $1::uuid AND state = 'held'",
        user.id,
    )
    await until(lambda: _zero_held(core, user), timeout=20, what="expired reservation given back")
    assert await remaining(core, user, "story") == 1
    r = await http.community.post(f"/stories/{sid}/generate", json={"length": "short"}, headers=user.headers)
    assert r.status_code == 200 and sse(r.text)[-1][0] == "done", r.text


# 5. PostgreSQL connections terminated during concurrent votes ------------------------------------


async def test_votes_under_killed_connections(fleet, http, dbs, infra, e2e_env):
    """pg_terminate_backend on the community database every 200 ms while 40 users vote on one
    character: each vote answers 204/200 or 503 DATABASE_UNAVAILABLE, and the character's counts
    equal the votes that succeeded, exactly (the votes table agrees)."""
    core, community = dbs["core"], dbs["community"]
    owner = await new_user(core)
    r = await http.community.post(
        "/characters",
        json={"name": "Vote Target", "description": "Stands still.", "personality": "Calm.", "visibility": "public"},
        headers=owner.headers,
    )
    assert r.status_code == 201, r.text
    cid = r.json()["id"]
    voters = [User(Tokens()) for _ in range(40)]
    database = e2e_env["COMMUNITY_DATABASE_URL"].rsplit("/", 1)[1]
    results: list[tuple[User, int, int, str | None]] = []
    stop = asyncio.Event()

    async def vote(voter: User, value: int, after: float) -> None:
        await asyncio.sleep(after)  # spread over ~1.2 s: some batches land between kills, some on them
        r = await http.community.put(
            "/votes", json={"target_type": "character", "target_id": cid, "value": value}, headers=voter.headers
        )
        code = r.json()["detail"]["code"] if r.status_code >= 400 else None
        results.append((voter, value, r.status_code, code))

    killed = 0

    async def killer():
        nonlocal killed
        while not stop.is_set():
            killed += await kill_connections(infra.pg_admin_url, [database])
            await asyncio.sleep(0.2)

    kill_task = asyncio.create_task(killer())
    try:
        await asyncio.sleep(0.1)
        await asyncio.gather(*(vote(v, 1 if i % 4 else -1, (i % 20) * 0.06) for i, v in enumerate(voters)))
    finally:
        stop.set()
        await kill_task
    assert killed > 0
    unexpected = [(s, c) for _, _, s, c in results if s not in (200, 204, 503)]
    assert not unexpected, unexpected
    assert all(c == "DATABASE_UNAVAILABLE" for _, _, s, c in results if s == 503)
    await wait_ready(fleet.url("community"), timeout=30)
    ok = [(v, value) for v, value, s, _ in results if s in (200, 204)]
    up = sum(1 for _, value in ok if value == 1)
    down = sum(1 for _, value in ok if value == -1)
    stored = await community.fetch(
        "SELECT user_id::text AS user_id, value FROM votes WHERE target_type = 'character' AND target_id = $1::uuid",
        cid,
    )
    assert {(r["user_id"], r["value"]) for r in stored} == {(v.id, value) for v, value in ok}
    r = await http.community.get(f"/characters/{cid}", headers=owner.headers)
    assert r.status_code == 200, r.text
    counts = await community.fetchrow("SELECT up, down, score FROM characters WHERE id::text = $1", cid)
    assert (counts["up"], counts["down"], counts["score"]) == (up, down, up - down), (dict(counts), up, down)
    # Recovered by itself: the voters refused during the storm vote again, all succeed, and the
    # counts are every voter's vote exactly once.
    refused = [(v, value) for v, value, s, _ in results if s not in (200, 204)]
    for voter, value in refused:
        r = await http.community.put(
            "/votes", json={"target_type": "character", "target_id": cid, "value": value}, headers=voter.headers
        )
        assert r.status_code in (200, 204), r.text
    up_all = sum(1 for i in range(len(voters)) if i % 4)
    counts = await community.fetchrow("SELECT up, down, score FROM characters WHERE id::text = $1", cid)
    assert (counts["up"], counts["down"]) == (up_all, len(voters) - up_all), dict(counts)
    assert await community.fetchval(
        "SELECT count(*) FROM votes WHERE target_type = 'character' AND target_id = $1::uuid", cid
    ) == len(voters)
    print(f"votes: {len(ok)} succeeded, {len(results) - len(ok)} answered 503, {killed} backends terminated")
