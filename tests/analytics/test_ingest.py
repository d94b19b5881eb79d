"""The consumer of every event: each counted once under redelivery, rollups equal to a replay
from the raw events, erasure on user.deleted."""

import asyncio
import os
import random
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from analytics_service import service
from tests.analytics.conftest import event, histograms_match_the_users, snapshot

pytestmark = pytest.mark.asyncio(loop_scope="session")
ROOT = Path(__file__).resolve().parents[2]


def mixed_stream(users: list[str], n: int, seed: int) -> list:
    """A stream like the fleet's: chats (with regenerations), new conversations, stories, images,
    sign-ups, upgrades, cancellations, payments, system events, over three months."""
    rnd = random.Random(seed)
    characters = ["Sherlock Holmes", "Hermione Granger", "Darth Vader", "Frodo"]
    start = datetime(2026, 2, 20, tzinfo=UTC)
    conversations = {u: [str(uuid.uuid4()) for _ in range(3)] for u in users}
    out = []
    for u in users:
        out.append(
            event(
                "user.created",
                u,
                {"email": f"{u[:6]}@example.com", "is_guest": rnd.random() < 0.2},
                at=start - timedelta(days=1),
            )
        )
    for _ in range(n):
        u = rnd.choice(users)
        at = start + timedelta(minutes=rnd.randrange(0, 60 * 24 * 70))
        kind = rnd.random()
        if kind < 0.55:
            conv = rnd.choice(conversations[u])
            out.append(
                event(
                    "message.sent",
                    u,
                    {"conversation_id": conv, "sender": rnd.choice(characters), "regenerated": rnd.random() < 0.1},
                    at=at,
                )
            )
        elif kind < 0.65:
            out.append(
                event(
                    "conversation.created",
                    u,
                    {"conversation_id": rnd.choice(conversations[u]), "character": rnd.choice(characters)},
                    at=at,
                )
            )
        elif kind < 0.7:
            out.append(event("story.created", u, {}, at=at))
        elif kind < 0.75:
            out.append(event("image.generated", u, {}, at=at))
        elif kind < 0.78:
            prev = rnd.choice([0, 0, 1])
            out.append(
                event(
                    rnd.choice(["subscription.created", "subscription.upgraded"]),
                    u,
                    {"tier": prev + 1, "previous_tier": prev},
                    at=at,
                )
            )
        elif kind < 0.8:
            out.append(event("subscription.cancelled", u, {"tier": 0, "previous_tier": 1}, at=at))
        elif kind < 0.83:
            out.append(event("payment.succeeded", u, {"amount": rnd.choice([999, 1999])}, at=at))
        elif kind < 0.86:
            out.append(event("quota.updated", u, {}, at=at))
        elif kind < 0.88:
            out.append(event("content.synced", None, {"n": 1}, at=at))  # no user, unknown type
        elif kind < 0.89:
            out.append(event("message.sent", "not-a-uuid", {"sender": "Frodo"}, at=at))
        else:
            out.append(event("user.engagement", u, {"action": "checkin"}, at=at))
    return out


async def test_every_event_counted_once_under_redelivery_and_a_replay_gives_the_same_numbers(bus, analytics_db):
    users = [str(uuid.uuid4()) for _ in range(12)]
    stream = mixed_stream(users, 1500, seed=17)
    rnd = random.Random(5)
    # Redelivery as the bus makes it: some events twice in a row (one batch), some again later.
    redelivered = rnd.sample(stream, 200)
    first = stream[:800] + redelivered[:100]
    second = stream[800:] + redelivered
    await bus.publish(*first)
    await bus.publish(*second)
    await bus.applied(*stream)
    await bus.publish(*redelivered[100:150])  # once more after everything was applied
    await bus.applied(*redelivered[100:150])

    ids = [e.event_id for e in stream]
    assert await analytics_db.fetchval(
        "SELECT count(*) FROM analytics_events WHERE event_id = ANY($1::uuid[])", ids
    ) == len(stream)

    # Per user, from the stream itself.
    for u in users[:4]:
        mine = [e for e in stream if e.user_id == u]
        row = await analytics_db.fetchrow("SELECT * FROM user_analytics WHERE user_id = $1", u)
        assert row["messages"] == sum(1 for e in mine if e.event_type == "message.sent" and not e.data["regenerated"])
        assert row["conversations"] == sum(1 for e in mine if e.event_type == "conversation.created")
        assert row["stories"] == sum(1 for e in mine if e.event_type == "story.created")
        assert row["images"] == sum(1 for e in mine if e.event_type == "image.generated")
        assert row["events"] == len(mine)
        chars = {e.data["sender"] for e in mine if e.event_type == "message.sent" and not e.data["regenerated"]}
        assert row["characters"] == len(chars)
        active = {
            e.timestamp.date()
            for e in mine
            if e.event_type
            in ("message.sent", "conversation.created", "story.created", "image.generated", "user.engagement")
        }
        assert row["active_days"] == len(active)
        upgrades = sum(1 for e in mine if e.event_type in ("subscription.created", "subscription.upgraded"))
        assert row["upgrades"] == upgrades

    # Platform, one day, from the stream.
    day = datetime(2026, 3, 10, tzinfo=UTC)
    on_day = [e for e in stream if e.timestamp.date() == day.date()]
    metrics = {
        r["metric"]: r["value"]
        for r in await analytics_db.fetch(
            "SELECT metric, value FROM platform_metrics WHERE granularity = 'day' AND bucket = $1", day
        )
    }
    assert metrics.get("events", 0) >= len(on_day)  # other tests may add events on that day
    msgs = [e for e in on_day if e.event_type == "message.sent" and not e.data.get("regenerated")]
    assert metrics.get("messages", 0) >= len(msgs)

    # Three months of events, each in its month's partition.
    parts = await analytics_db.fetch(
        "SELECT tableoid::regclass::text AS part, count(*) FROM analytics_events"
        " WHERE event_id = ANY($1::uuid[]) GROUP BY 1",
        ids,
    )
    assert {r["part"] for r in parts} >= {
        "analytics_events_2026_02",
        "analytics_events_2026_03",
        "analytics_events_2026_04",
    }

    await bus.settled()
    await histograms_match_the_users(analytics_db)
    live = await snapshot(analytics_db)
    assert await service.replay(analytics_db) >= len(stream)
    assert await snapshot(analytics_db) == live


async def test_platform_figures_of_a_quiet_hour_are_exact(bus, analytics_db):
    hour = datetime(2031, 5, 4, 13, tzinfo=UTC)  # nothing else is ever sent in this hour
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    events = [
        event(
            "message.sent", a, {"sender": "Frodo", "conversation_id": str(uuid.uuid4())}, at=hour + timedelta(minutes=1)
        ),
        event("message.sent", a, {"sender": "Frodo", "regenerated": True}, at=hour + timedelta(minutes=2)),
        event("message.sent", b, {"sender": "Sam"}, at=hour + timedelta(minutes=3)),
        event("user.created", b, {"is_guest": False}, at=hour + timedelta(minutes=4)),
        event("subscription.created", b, {"tier": 1, "previous_tier": 0}, at=hour + timedelta(minutes=5)),
        event("subscription.upgraded", b, {"tier": 2, "previous_tier": 1}, at=hour + timedelta(minutes=6)),
        event("payment.succeeded", b, {"amount": 1999}, at=hour + timedelta(minutes=7)),
        event("quota.updated", a, {}, at=hour + timedelta(minutes=8)),
    ]
    await bus.send(*events, *events[:3])
    rows = await analytics_db.fetch(
        "SELECT metric, value FROM platform_metrics WHERE granularity = 'hour' AND bucket = $1", hour
    )
    assert {r["metric"]: r["value"] for r in rows} == {
        "events": 8,
        "messages": 2,
        "new_users": 1,
        "conversions": 1,
        "revenue_cents": 1999,
        "active_users": 2,
    }


async def test_user_deleted_erases_the_user_and_keeps_totals_replayable(bus, analytics_db, analytics, tokens):
    gone, stays = str(uuid.uuid4()), str(uuid.uuid4())
    at = datetime(2026, 3, 12, 10, tzinfo=UTC)
    conv = str(uuid.uuid4())
    history = [event("user.created", gone, {"email": "gone@example.com"}, at=at)]
    history += [
        event("message.sent", gone, {"conversation_id": conv, "sender": "Yoda"}, at=at + timedelta(hours=i))
        for i in range(5)
    ]
    history += [event("message.sent", stays, {"sender": "Yoda"}, at=at)]
    await bus.send(*history)
    before = await analytics_db.fetchrow("SELECT users, messages FROM character_stats WHERE character = 'Yoda'")
    headers = tokens.headers(tokens.user(gone))
    assert (await analytics.get("/analytics/me", headers=headers)).json()["messages"] == 5
    assert await analytics_db.fetchval("SELECT count(*) FROM user_progress WHERE user_id = $1", gone) == 1

    await bus.send(event("user.deleted", gone, {"was_guest": False}))

    for table in (
        "analytics_events",
        "user_analytics",
        "user_active_days",
        "user_characters",
        "conversation_stats",
        "activity_buckets",
        "user_progress",
        "user_achievements",
        "flip_tickets",
    ):
        assert await analytics_db.fetchval(f"SELECT count(*) FROM {table} WHERE user_id = $1", gone) == 0, table
    assert (
        await analytics_db.fetchval("SELECT count(*) FROM analytics_events WHERE data::text LIKE '%gone@example.com%'")
        == 0
    )
    # The deleted user's token is refused from the deletion on (shared.tombstones).
    r = await analytics.get("/analytics/me", headers=headers)
    assert r.status_code == 401 and r.json()["detail"]["code"] == "USER_DELETED"
    # Totals still count what happened, and a replay agrees with them.
    after = await analytics_db.fetchrow("SELECT users, messages FROM character_stats WHERE character = 'Yoda'")
    assert tuple(after) == tuple(before)
    assert await analytics_db.fetchval("SELECT count(*) FROM user_analytics WHERE user_id = $1", stays) == 1
    await bus.settled()
    await histograms_match_the_users(analytics_db)
    live = await snapshot(analytics_db)
    await service.replay(analytics_db)
    assert await snapshot(analytics_db) == live


async def test_the_replay_command_rebuilds_the_same_rollups(bus, analytics_db, service_env):
    u = str(uuid.uuid4())
    await bus.send(*[event("message.sent", u, {"sender": "Gandalf"}) for _ in range(3)])
    await bus.settled()
    live = await snapshot(analytics_db)
    root = ROOT
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "analytics_service.replay",
        cwd=root,
        env={**os.environ, "ANALYTICS_DATABASE_URL": service_env["ANALYTICS_DATABASE_URL"]},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, out.decode()
    assert "rollups rebuilt from" in out.decode()
    assert await snapshot(analytics_db) == live
    missing = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "analytics_service.replay",
        cwd=root,
        env={k: v for k, v in os.environ.items() if k != "ANALYTICS_DATABASE_URL"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(missing.communicate(), 60)
    assert missing.returncode == 2 and b"ANALYTICS_DATABASE_URL is not set" in out


async def test_a_batch_that_deletes_its_user_leaves_nothing_naming_them(analytics_db):
    """Messages and the user's deletion in one batch: counted for the totals, no progression and
    no event naming the user (it would come back through `#` after the erasure)."""
    gone = str(uuid.uuid4())
    events = [event("message.sent", gone, {"sender": "Yoda"}) for _ in range(3)] + [event("user.deleted", gone)]
    outbox_before = await analytics_db.fetchval("SELECT count(*) FROM outbox_events")
    async with analytics_db.acquire() as conn, conn.transaction():
        await service.Ingestor()(conn, events)
    assert await analytics_db.fetchval("SELECT count(*) FROM outbox_events") == outbox_before
    for table in ("analytics_events", "user_analytics", "user_progress", "user_achievements", "activity_buckets"):
        assert await analytics_db.fetchval(f"SELECT count(*) FROM {table} WHERE user_id = $1", gone) == 0, table
    ids = [e.event_id for e in events]
    erased = await analytics_db.fetch(
        "SELECT erased, user_id FROM analytics_events WHERE event_id = ANY($1::uuid[])", ids
    )
    assert len(erased) == 4 and all(r["erased"] for r in erased)
