"""Account deletion across all seven running services, checked from the databases' catalogues.

After `DELETE /users/me` and `user.deleted` processed everywhere:
- every service refuses the deleted user's still-valid access token (401 `USER_DELETED`), and
  a write tried with it creates nothing;
- no row of any table of any service database refers to the user, found from the catalogue
  (`information_schema.columns`), not from a hand list: see `user_columns` for the rule; a column
  that looks like a user column but that the rule cannot check fails the test;
- the user's blobs are gone from the media registry and from blob storage;
- no outbox row from before the deletion names the user; those the deletion emitted are deleted
  by the retention sweep once published;
- another user's rows are exactly as they were;
- the second erasure pass (shared/erasure.py) ran in every service database: its bookkeeping row
  names the user (a text column the rule checks) until it has.

And a validly signed token of a user Auth never had is refused by every service (401
`USER_NOT_FOUND`, shared.known_users) and creates no row anywhere.
"""

from __future__ import annotations

import asyncio
import io
import re
import time
import uuid

import asyncpg
import pytest
import pytest_asyncio

from shared import fleet as fleet_manifest
from shared.bus import sweep_published
from tests.e2e.fans import Fan, sign_up, talk
from tests.e2e.fleets import running_fleet

SERVICES = tuple(s.name for s in fleet_manifest.SERVICES)

# The rule. A column "looks like a user" when its name has one of these words as a whole
# underscore-separated part (user_id, owner_id, author_id, voter_id, reporter_id, created_by,
# referred_by, member_id, actor_id, sender, ...).
PERSON_WORDS = (
    "user|users|owner|author|voter|reporter|creator|member|referrer|referred|inviter|invitee|invited|actor|"
    "sender|recipient|moderator|reviewer|follower|followee|blocker|blocked|uploader|editor|participant|"
    "subscriber|customer|player|requester|assignee|by"
)
USER_LOOKING = re.compile(rf"(^|_)({PERSON_WORDS})(_|$)")
# Such a column is checked by equality when it can hold an id (a uuid or text), by containment when
# it holds several (json, arrays). Any other type must be named here with the reason it is not a
# reference to a user; an unnamed one fails the test (a new column the rule does not cover).
ID_TYPES = {"uuid", "text", "character varying", "character"}
CONTAINER_TYPES = {"jsonb", "json", "ARRAY"}
NOT_A_USER: dict[tuple[str, str], str] = {
    ("character_stats", "users"): "analytics: how many users talked to a character (a count)",
    ("metric_histogram", "users"): "analytics: users per bucket of a metric (a count)",
    ("metric_histogram_blocks", "users"): "analytics: users per block of buckets (a count)",
}
# The outbox keeps serialized event bodies (bytea, which the column rules do not read): checked
# on its own, by `outbox_naming`. processed_events holds (consumer, event id, event type) only.


def user_columns(columns: list[asyncpg.Record]) -> tuple[list[tuple[str, str, str]], list[str]]:
    """(table, column, how) for every user-looking column, and the ones the rule cannot classify."""
    checked, unclassified = [], []
    for c in columns:
        table, column, data_type = c["table_name"], c["column_name"], c["data_type"]
        if not USER_LOOKING.search(column):
            continue
        if data_type in ID_TYPES:
            checked.append((table, column, "equals"))
        elif data_type in CONTAINER_TYPES:
            checked.append((table, column, "contains"))
        elif (table, column) not in NOT_A_USER:
            unclassified.append(f"{table}.{column} ({data_type})")
    return checked, unclassified


def every_text_column(columns: list[asyncpg.Record]) -> list[tuple[str, str, str]]:
    """The sweep: every column of any table that could hold a user id, whatever its name."""
    out = []
    for c in columns:
        if c["data_type"] in ID_TYPES:
            out.append((c["table_name"], c["column_name"], "equals"))
        elif c["data_type"] in CONTAINER_TYPES:
            out.append((c["table_name"], c["column_name"], "contains"))
    return out


def _count_sql(table: str, column: str, how: str) -> str:
    where = f'"{column}"::text = $1' if how == "equals" else f'strpos("{column}"::text, $1) > 0'
    return f'SELECT count(*) FROM "{table}" WHERE {where}'


async def _columns(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT c.table_name, c.column_name, c.data_type FROM information_schema.columns c"
        " JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name"
        " WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE' ORDER BY 1, 2"
    )


async def references(pools: dict[str, asyncpg.Pool], user_id: str, *, sweep: bool = False) -> dict[str, int]:
    """`db.table.column` -> rows naming the user (zero counts left out)."""
    found: dict[str, int] = {}
    for db, pool in pools.items():
        columns = await _columns(pool)
        targets = every_text_column(columns) if sweep else user_columns(columns)[0]
        for table, column, how in targets:
            n = await pool.fetchval(_count_sql(table, column, how), user_id)
            if n:
                found[f"{db}.{table}.{column}"] = n
    return found


async def outbox_naming(pools: dict[str, asyncpg.Pool], user_id: str) -> dict[str, dict[str, bool]]:
    """db -> {event id: published?} of the outbox rows whose body names the user."""
    found = {}
    for db, pool in pools.items():
        rows = await pool.fetch(
            "SELECT event_id::text, published_at IS NOT NULL FROM outbox_events WHERE position($1::bytea IN body) > 0",
            user_id.encode(),
        )
        if rows:
            found[db] = {r[0]: r[1] for r in rows}
    return found


@pytest.fixture(scope="module")
def fleet(e2e_env, sandbox_handle, infra, tmp_path_factory):
    """All seven services (this module's own fleet; the other e2e modules run three)."""
    # The second erasure pass soon after the first, so the test sees it done (production: 120 s).
    env = {
        **e2e_env,
        **sandbox_handle.env(keys=True),
        "ERASURE_SECOND_PASS_SECONDS": "2",
        "ERASURE_SWEEP_SECONDS": "0.5",
    }
    with running_fleet(env, sandbox_handle, infra, tmp_path_factory.mktemp("fleet7"), services=SERVICES) as f:
        yield f


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def pools(e2e_env):
    """Every service database, direct (not through the fleet's proxies)."""
    out = {}
    for db in sorted({s.database_var for s in fleet_manifest.SERVICES if s.database_var}):
        out[db] = await asyncpg.create_pool(e2e_env[db], min_size=1, max_size=2)
    yield out
    for pool in out.values():
        await pool.close()


def _png(rgb: tuple[int, int, int]) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (24, 16), rgb).save(buffer, format="PNG")
    return buffer.getvalue()


async def _make_data(http, fan: Fan, rgb: tuple[int, int, int]) -> dict:
    """Data in every service, the way a client makes it."""
    made = {}
    r = await talk(http, fan, "Hello Luke, tell me about the Force.")
    assert r.status_code == 200, r.text
    made["conversation"] = r.json()["conversation_id"]
    r = await http.payment.post("/create-checkout-session", json={"tier": "pro"}, headers=fan.headers)
    assert r.status_code == 200, r.text
    r = await http.media.post(
        "/images/upload",
        files={"file": ("me.png", _png(rgb), "image/png")},
        data={"purpose": "avatar"},
        headers=fan.headers,
    )
    assert r.status_code == 201, r.text
    made["image"] = r.json()["id"]
    r = await http.community.post(
        "/characters",
        json={"name": f"Sidekick {fan.email[:6]}", "description": "A loyal friend.", "personality": "Brave."},
        headers=fan.headers,
    )
    assert r.status_code == 201, r.text
    made["character"] = r.json()["id"]
    r = await http.community.put(f"/favorites/character/{made['character']}", headers=fan.headers)
    assert r.status_code == 204, r.text
    r = await http.community.post(
        "/rooms", json={"name": f"Room {fan.email[:6]}", "visibility": "public"}, headers=fan.headers
    )
    assert r.status_code == 201, r.text
    r = await http.analytics.post("/analytics/checkin", json={"timezone": "Europe/London"}, headers=fan.headers)
    assert r.status_code == 200, r.text
    return made


async def _settled(pools, user_id: str, quiet: float = 1.0, timeout: float = 30.0) -> dict[str, int]:
    """The user's reference counts once they stop changing (events still being consumed)."""
    deadline = time.monotonic() + timeout
    last = await references(pools, user_id)
    while True:
        await asyncio.sleep(quiet)
        now = await references(pools, user_id)
        if now == last:
            return now
        assert time.monotonic() < deadline, f"still changing: {last} -> {now}"
        last = now


def _blob_exists(infra_conn: str, container: str, name: str) -> bool:
    from azure.storage.blob import BlobServiceClient

    with BlobServiceClient.from_connection_string(infra_conn) as service:
        return service.get_container_client(container).get_blob_client(name).exists()


# A read per service, to see when it has heard of the deletion without creating anything.
READS = {
    "auth": ("GET", "/users/me"),
    "payment": ("GET", "/subscription"),  # not /quota: it creates the quota row of a user it has not seen
    "chat": ("GET", "/conversations"),
    "media": ("GET", "/images"),
    "community": ("GET", "/favorites"),
    "analytics": ("GET", "/analytics/me"),
}


async def test_deleted_user_is_refused_everywhere_and_erased_from_every_table(fleet, http, outbox, pools, e2e_env):
    assert set(READS) | {"content"} == set(SERVICES)  # Content has no route that takes a user's token
    gone, kept = await sign_up(http, outbox), await sign_up(http, outbox)
    await _make_data(http, gone, (200, 30, 30))
    await _make_data(http, kept, (30, 30, 200))

    # The rule classifies every user-looking column of every database.
    for db, pool in pools.items():
        _, unclassified = user_columns(await _columns(pool))
        assert not unclassified, f"{db}: user-looking columns the rule does not classify: {unclassified}"

    before_gone = await _settled(pools, gone.user_id)
    before_kept = await _settled(pools, kept.user_id)
    # The test has teeth: the user is in every database before.
    assert {key.split(".")[0] for key in before_gone} == set(pools), before_gone
    blobs = [
        name
        for row in await pools["MEDIA_DATABASE_URL"].fetch(
            "SELECT blob_name, thumbnail_name FROM media_metadata WHERE user_id = $1", uuid.UUID(gone.user_id)
        )
        for name in row
        if name
    ]
    container = e2e_env["AZURE_STORAGE_CONTAINER"]
    conn_string = e2e_env["AZURE_STORAGE_CONNECTION_STRING"]
    assert blobs and all([await asyncio.to_thread(_blob_exists, conn_string, container, b) for b in blobs])

    outbox_before = await outbox_naming(pools, gone.user_id)
    # The test has teeth: Auth's user.created (with the email) is among them.
    assert outbox_before.get("DATABASE_URL"), outbox_before

    # Every database gets the second erasure pass's row (shared/erasure.py) for a while: watched
    # from the deletion on, so the erasure below is known to include the second pass everywhere.
    second_pass_seen: set[str] = set()

    async def watch_second_passes() -> None:
        while second_pass_seen != set(pools):
            for db, pool in pools.items():
                sql = "SELECT count(*) FROM erasure_second_passes WHERE user_id = $1"
                if db not in second_pass_seen and await pool.fetchval(sql, gone.user_id):
                    second_pass_seen.add(db)
            await asyncio.sleep(0.05)

    watcher = asyncio.create_task(watch_second_passes())
    r = await http.auth.delete("/users/me", headers=gone.headers)
    assert r.status_code == 204
    deleted_at = time.monotonic()
    # Every service refuses the token, each within the event's delivery (measured from the 204,
    # printed); Auth at once (its own database), before any event is delivered.
    r = await http.auth.get("/users/me", headers=gone.headers)
    assert r.status_code == 401 and r.json()["detail"]["code"] == "USER_DELETED"
    refused_after: dict[str, float] = {"auth": time.monotonic() - deleted_at}

    async def until_refused(service: str, method: str, path: str) -> None:
        # One poller per service, concurrently: each figure is that service's own delay.
        while True:
            r = await getattr(http, service).request(method, path, headers=gone.headers)
            if r.status_code == 401:
                assert r.json()["detail"]["code"] == "USER_DELETED", (service, r.text)
                assert r.headers["www-authenticate"] == "Bearer"
                refused_after[service] = time.monotonic() - deleted_at
                return
            assert r.status_code == 200, (service, r.text)
            assert time.monotonic() < deleted_at + 15, f"{service}: not refused within 15 s"
            await asyncio.sleep(0.005)

    await asyncio.gather(*(until_refused(s, m, p) for s, (m, p) in READS.items() if s != "auth"))
    print("refused after (ms):", {k: round(v * 1000, 1) for k, v in sorted(refused_after.items())})

    # Writes with the token create nothing.
    writes = [
        await http.auth.put("/users/me/details", json={"name": "Back"}, headers=gone.headers),
        await http.payment.post("/create-checkout-session", json={"tier": "pro"}, headers=gone.headers),
        await talk(http, gone, "Are you still there?"),
        await http.media.post(
            "/images/upload", files={"file": ("x.png", _png((1, 2, 3)), "image/png")}, headers=gone.headers
        ),
        await http.community.post(
            "/characters", json={"name": "Ghost", "description": "x", "personality": "y"}, headers=gone.headers
        ),
        await http.analytics.post("/analytics/checkin", json={}, headers=gone.headers),
    ]
    for r in writes:
        assert r.status_code == 401 and r.json()["detail"]["code"] == "USER_DELETED", (str(r.url), r.text)

    # Erased everywhere once every consumer has processed the event.
    deadline = time.monotonic() + 30
    while left := await references(pools, gone.user_id):
        assert time.monotonic() < deadline, f"rows still naming the deleted user: {left}"
        await asyncio.sleep(0.2)
    # Scheduled in every database (Auth's core one is Payment's too), and run: its row is gone.
    try:
        await asyncio.wait_for(watcher, 5)
    except TimeoutError:
        pass
    assert second_pass_seen == set(pools), f"second erasure pass scheduled only in {sorted(second_pass_seen)}"
    # The sweep: no column of any table, whatever its name, still holds the id.
    assert await references(pools, gone.user_id, sweep=True) == {}
    # Blobs: out of the registry and out of storage (the sweep runs moments after the erasure).
    deadline = time.monotonic() + 15
    while [b for b in blobs if await asyncio.to_thread(_blob_exists, conn_string, container, b)]:
        assert time.monotonic() < deadline, "blobs of the deleted user still in storage"
        await asyncio.sleep(0.2)
    assert not await pools["MEDIA_DATABASE_URL"].fetchval(
        "SELECT count(*) FROM media_blobs WHERE name = ANY($1::text[])", blobs
    )
    # The outbox: every row that named the user before the deletion is gone (each service's
    # erasure); what names them now was emitted by the deletion (Auth's user.deleted, Media's
    # image.deleted...), owed to the bus until published. Once published, the relay's retention
    # sweep deletes it (OUTBOX_RETENTION_HOURS after publication): forced here with no retention.
    deadline = time.monotonic() + 15
    while True:
        after = await outbox_naming(pools, gone.user_id)
        if all(published for rows in after.values() for published in rows.values()):
            break
        assert time.monotonic() < deadline, f"outbox rows naming the deleted user still unpublished: {after}"
        await asyncio.sleep(0.2)
    print("outbox rows naming the user after the erasure:", {db: len(rows) for db, rows in after.items()})
    for db, rows in after.items():
        assert not set(rows) & set(outbox_before.get(db, {})), f"{db}: rows from before the deletion kept"
    for pool in pools.values():
        await sweep_published(pool, older_than_seconds=0)
    assert await outbox_naming(pools, gone.user_id) == {}
    # The other user is untouched.
    assert await references(pools, kept.user_id) == before_kept
    r = await http.chat.get("/conversations", headers=kept.headers)
    assert r.status_code == 200 and r.json()


async def test_token_of_a_never_created_user_is_refused_everywhere_and_creates_nothing(fleet, http, pools, tokens):
    stranger = str(uuid.uuid4())
    headers = tokens.headers(tokens.user(stranger, tier=2))
    reads = [await getattr(http, s).request(m, p, headers=headers) for s, (m, p) in READS.items()]
    writes = [
        await http.auth.put("/users/me/details", json={"name": "Nobody"}, headers=headers),
        await http.payment.get("/quota", headers=headers),  # creates a quota row for a user it has not seen
        await http.payment.post("/create-checkout-session", json={"tier": "pro"}, headers=headers),
        await http.chat.post(
            "/talk_with", json={"message": "Hi", "character": "Luke Skywalker", "series": "Star Wars"}, headers=headers
        ),
        await http.media.post(
            "/images/upload", files={"file": ("x.png", _png((4, 5, 6)), "image/png")}, headers=headers
        ),
        await http.community.post(
            "/characters", json={"name": "Nobody", "description": "x", "personality": "y"}, headers=headers
        ),
        await http.analytics.post("/analytics/checkin", json={}, headers=headers),
    ]
    for r in reads + writes:
        assert r.status_code == 401, (str(r.url), r.text)
        assert r.json()["detail"]["code"] == "USER_NOT_FOUND", (str(r.url), r.text)
        assert r.headers["www-authenticate"] == "Bearer"
    assert await references(pools, stranger, sweep=True) == {}
