"""The fleet load run's checks (bench/bench_fleet.py), read from the databases and the broker once the
fleet has drained, and the CPU accounting of the run's processes."""

from __future__ import annotations

import asyncio
import collections
import os
import resource
import time
import uuid
from pathlib import Path

import asyncpg
from pycrdt import Doc, Text

from shared import fleet as manifest
from shared.events import Event
from shared.quota import REWARD_QUOTA_TYPES
from shared.testing.env import Infra, queue_info

TAP_QUEUE = "bench.analytics.tap"
SERVICE_QUEUES = tuple(s.events_queue for s in manifest.SERVICES if s.consumes_events)
# Free allowances (payment_service/migrations/001_payment.sql tier_quotas) and referral bonuses.
FREE_REGULAR, REFERRER_BONUS, REFERRED_BONUS = 5, 10, 5
STORY_ALLOWANCE = {0: 1, 1: 20}  # per tier; an upgrade from Free starts a Pro period
PRO_IMAGES = 5
PRO_PREMIUM, PRO_RECOGNITIONS = 100, 10  # shared/tiers.py TIER_QUOTAS[Pro]; Max is unlimited
DRAIN_TIMEOUT = 600.0  # seconds the fleet gets to publish and consume everything after the load


# The checks, once the fleet has drained ---------------------------------------------------------


def drain_tap(url: str) -> list[str]:
    """Every event id that reached the '#' queue (consumed and acknowledged here)."""
    import pika

    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    ids = []
    while True:
        method, props, body = ch.basic_get(TAP_QUEUE, auto_ack=True)
        if method is None:
            break
        ids.append(props.message_id)
    conn.close()
    return ids


def declare_tap(url: str) -> None:
    import pika

    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    ch.queue_declare(TAP_QUEUE, durable=True)
    ch.queue_bind(TAP_QUEUE, "scenextras.events", "#")
    conn.close()


async def wait_drained(dbs: dict[str, asyncpg.Connection], infra: Infra, vhost: str, timeout: float) -> float:
    """Until no outbox row is unpublished and every service queue is empty with nothing unacked
    (twice in a row: a consumer's own events come back through the exchange). Returns the wait."""
    started = time.monotonic()
    calm = 0
    while time.monotonic() - started < timeout:
        pending = 0
        for conn in dbs.values():
            pending += await conn.fetchval("SELECT count(*) FROM outbox_events WHERE published_at IS NULL")
        queued = 0
        for q in SERVICE_QUEUES:
            info = await asyncio.to_thread(queue_info, infra, vhost, q) or {}
            queued += info.get("messages", 0) + info.get("messages_unacknowledged", 0)
        calm = calm + 1 if pending == 0 and queued == 0 else 0
        if calm >= 3:
            break
        await asyncio.sleep(1.0)
    return time.monotonic() - started


async def counts_by_user(conn: asyncpg.Connection, sql: str) -> dict[str, int]:
    """`sql` selects (u, n): a count per user id."""
    return {str(r["u"]): r["n"] for r in await conn.fetch(sql)}


async def checks(dsns: dict[str, str], amqp_url: str, infra: Infra, vhost: str, run) -> dict:
    # One connection per database with an outbox (Content has none); "core" is Auth's and Payment's.
    dbs = {role: await asyncpg.connect(dsn) for role, dsn in dsns.items()}
    core, chat, media, community, analytics = (dbs[r] for r in ("core", "chat", "media", "community", "analytics"))
    try:
        drain_seconds = await wait_drained(dbs, infra, vhost, timeout=DRAIN_TIMEOUT)
        # Events: every outbox row published, each seen on the '#' tap and stored once by Analytics.
        published: dict[str, str] = {}
        unpublished = 0
        for role, conn in dbs.items():
            for r in await conn.fetch("SELECT event_id::text AS id, published_at FROM outbox_events"):
                if r["published_at"] is None:
                    unpublished += 1
                else:
                    published[r["id"]] = role
        seen = await asyncio.to_thread(drain_tap, amqp_url)
        stored = collections.Counter(
            r["id"] for r in await analytics.fetch("SELECT event_id::text AS id FROM analytics_events")
        )
        per_service = collections.Counter(published.values())
        # Quota: conversations saved vs regular reservations charged, per user; free allowance kept.
        convs = {
            str(r["user_id"]): r["n"]
            for r in await chat.fetch("SELECT user_id, count(*) AS n FROM conversations GROUP BY user_id")
        }
        ledger = {
            (r["u"], r["t"]): r
            for r in await core.fetch(
                "SELECT user_id::text AS u, quota_type AS t,"
                " count(*) FILTER (WHERE state = 'settled') AS settled,"
                " coalesce(sum(charged) FILTER (WHERE state = 'settled'), 0) AS charged,"
                " coalesce(sum(charged) FILTER (WHERE state = 'settled' AND NOT unlimited), 0) AS limited,"
                " count(*) FILTER (WHERE state = 'held') AS held FROM quota_reservations GROUP BY 1, 2"
            )
        }
        tiers = {r["u"]: r["tier"] for r in await core.fetch("SELECT user_id::text AS u, tier FROM user_quotas")}
        bonus = {
            str(r["u"]): r["b"]
            for r in await core.fetch(
                f"SELECT u, sum(b) AS b FROM (SELECT referrer_id AS u, {REFERRER_BONUS} AS b FROM referrals "
                f"UNION ALL SELECT referred_id, {REFERRED_BONUS} FROM referrals) x GROUP BY u"
            )
        }

        # Flip-ticket rewards Payment credited (once per reward id: reward_grants' key), per user and type.
        grant_rows = await core.fetch(
            "SELECT reward_id::text AS id, user_id::text AS u, quota_type AS t, amount FROM reward_grants"
        )
        granted: collections.Counter = collections.Counter()
        for g in grant_rows:
            granted[(g["u"], g["t"])] += g["amount"]

        def spent(user: str, quota_type: str, column: str) -> int:
            row = ledger.get((user, quota_type))
            return int(row[column]) if row else 0

        regular_users = {u for u, t in ledger if t == "regular"} | set(convs)
        conv_mismatch = [u for u in regular_users if spent(u, "regular", "settled") != convs.get(u, 0)]
        conv_over = [
            u
            for u in regular_users
            if spent(u, "regular", "limited") > FREE_REGULAR + int(bonus.get(u, 0)) + granted[(u, "regular")]
        ]
        generated = {
            r["u"]: r["n"]
            for r in await community.fetch(
                "SELECT editor_id AS u, count(*) AS n FROM story_versions WHERE change = 'generation' GROUP BY 1"
            )
        }
        story_users = {u for u, t in ledger if t == "story"} | set(generated)
        story_mismatch = [u for u in story_users if spent(u, "story", "charged") != generated.get(u, 0)]
        story_over = [
            u
            for u in story_users
            if spent(u, "story", "limited") > STORY_ALLOWANCE[0] + (STORY_ALLOWANCE[1] if tiers.get(u, 0) >= 1 else 0)
        ]
        images = await counts_by_user(
            media,
            "SELECT user_id AS u, count(*) AS n FROM media_metadata WHERE kind = 'image' AND prompt IS NOT NULL"
            " GROUP BY 1",
        )
        image_users = {u for u, t in ledger if t == "image_gen"} | set(images)
        image_mismatch = [u for u in image_users if spent(u, "image_gen", "charged") != images.get(u, 0)]
        image_over = [
            u for u in image_users if spent(u, "image_gen", "limited") > PRO_IMAGES + granted[(u, "image_gen")]
        ]
        # Premium messages: replies of a premium model (chat's metadata) = `premium` charged = what the
        # clients were told; within Pro's 100 + premium messages won (Max: unlimited, not counted).
        premium = await counts_by_user(
            chat,
            "SELECT user_id AS u, count(*) AS n FROM messages WHERE role = 'assistant'"
            " AND metadata->>'quota_type' = 'premium' GROUP BY 1",
        )
        premium_users = {u for u, t in ledger if t == "premium"} | set(premium) | set(run.premium_told)
        premium_mismatch = [u for u in premium_users if spent(u, "premium", "charged") != premium.get(u, 0)]
        premium_told_mismatch = [
            u for u in premium_users - run.premium_unsure if premium.get(u, 0) != run.premium_told.get(u, 0)
        ]
        premium_over = [
            u for u in premium_users if spent(u, "premium", "limited") > PRO_PREMIUM + granted[(u, "premium")]
        ]
        # Recognition: results stored (one model call each) = `image_recognition` charged = the answers
        # the clients got that were not `cached` (a repeat of the same bytes is free); within Pro's 10.
        recognised = await counts_by_user(
            media, "SELECT user_id AS u, count(*) AS n FROM image_recognitions WHERE result IS NOT NULL GROUP BY 1"
        )
        recognition_users = {u for u, t in ledger if t == "image_recognition"} | set(recognised)
        recognition_users |= set(run.recognitions_told)
        recognition_mismatch = [
            u for u in recognition_users if spent(u, "image_recognition", "charged") != recognised.get(u, 0)
        ]
        recognition_told_mismatch = [
            u
            for u in recognition_users - run.recognition_unsure
            if recognised.get(u, 0) != run.recognitions_told.get(u, 0)
        ]
        recognition_over = [u for u in recognition_users if spent(u, "image_recognition", "limited") > PRO_RECOGNITIONS]
        # Group chat: each group conversation's replies stored = the replies its client was shown,
        # every one from a member of the cast.
        groups = await chat.fetch(
            "SELECT c.id::text AS id, c.user_id::text AS u, count(m.id) AS replies,"
            " count(m.id) FILTER (WHERE NOT EXISTS (SELECT 1 FROM jsonb_array_elements(c.participants) p"
            "   WHERE p->>'name' = m.sender)) AS strangers"
            " FROM conversations c LEFT JOIN messages m ON m.conversation_id = c.id AND m.role = 'assistant'"
            " WHERE c.conversation_type = 'group' GROUP BY c.id"
        )
        group_mismatch = [
            g["id"] for g in groups if g["u"] not in run.group_unsure and g["replies"] != run.group_told.get(g["id"], 0)
        ]
        group_mismatch += [cid for cid in set(run.group_told) - {g["id"] for g in groups}]
        group_strangers = sum(g["strangers"] for g in groups)
        # Flip tickets: each flipped ticket gave exactly one reward.granted (Analytics' outbox) and,
        # for a credit, exactly one grant in Payment of that type and amount, to that user; an XP
        # reward none; the reward each client was shown is the one stored.
        flipped = {
            r["id"]: r
            for r in await analytics.fetch(
                "SELECT id::text AS id, user_id::text AS u, reward_kind AS kind, reward_amount AS amount"
                " FROM flip_tickets WHERE flipped_at IS NOT NULL"
            )
        }
        announced = collections.Counter(
            Event.from_bytes(bytes(r["body"])).data.get("reward_id")
            for r in await analytics.fetch("SELECT body FROM outbox_events WHERE event_type = 'reward.granted'")
        )
        grants = {g["id"]: g for g in grant_rows}
        flip_wrong = []
        for tid, t in flipped.items():
            quota_type = REWARD_QUOTA_TYPES.get(t["kind"])
            g = grants.get(tid)
            if announced[tid] != 1:
                flip_wrong.append((tid, f"{announced[tid]} reward.granted"))
            elif quota_type is None and g is not None:
                flip_wrong.append((tid, "an XP reward credited in Payment"))
            elif quota_type is not None and (
                g is None or (g["u"], g["t"], g["amount"]) != (t["u"], quota_type, t["amount"])
            ):
                flip_wrong.append((tid, f"{t['kind']} {t['amount']} credited as {dict(g) if g else None}"))
        flip_wrong += [(gid, "a grant of no flipped ticket") for gid in set(grants) - set(flipped)]
        flip_wrong += [(tid, "announced, not flipped") for tid in set(announced) - set(flipped)]
        for tid, told in run.flips.items():
            t = flipped.get(tid)
            if t is None or (t["u"], t["kind"], t["amount"]) != (told["user"], told["kind"], told["amount"]):
                flip_wrong.append((tid, f"told {told}, stored {dict(t) if t else None}"))
        # The bonus itself, added once per reward: Payment announces each addition (quota.updated with
        # `bonus_added`, in the transaction that adds it); their sum per user and type = the grants.
        added: collections.Counter = collections.Counter()
        for r in await core.fetch("SELECT body FROM outbox_events WHERE event_type = 'quota.updated'"):
            e = Event.from_bytes(bytes(r["body"]))
            if str(e.data.get("reason", "")).startswith("reward:"):
                added[(e.user_id, e.data.get("quota_type"))] += int(e.data.get("bonus_added") or 0)
        bonus_wrong = [k for k in set(added) | set(granted) if added[k] != granted[k]]
        flip_wrong += [(f"{u} {t}", f"bonus added {added[(u, t)]}, granted {granted[(u, t)]}") for u, t in bonus_wrong]
        flip_kinds = collections.Counter(t["kind"] for t in flipped.values())
        # Rooms: every edit the other client received is in the room's stored document and in the
        # story's text saved from it when the last client left.
        room_missing, story_missing = 0, 0
        for room_id, edits in run.room_edits.items():
            doc = Doc()
            for r in await community.fetch(
                "SELECT body FROM room_doc_updates WHERE room_id = $1 ORDER BY seq", uuid.UUID(room_id)
            ):
                doc.apply_update(bytes(r["body"]))
            stored_text = str(doc.get("body", type=Text))
            story_text = await community.fetchval(
                "SELECT body FROM stories WHERE id = $1", uuid.UUID(run.room_story[room_id])
            )
            room_missing += sum(1 for e in edits if e not in stored_text)
            story_missing += sum(1 for e in edits if e not in (story_text or ""))
        exports_incomplete = sum(n for k, n in run.exports_checked.items() if k.endswith("INCOMPLETE"))
        negative = await core.fetchval(
            "SELECT count(*) FROM user_quotas WHERE quota < -1 OR bonus_quota < 0 OR quota_story < -1"
            " OR quota_image_generation < -1 OR quota_premium_model < -1"
        )
        held = sum(int(r["held"]) for r in ledger.values())
        # Votes: stored counters = the votes rows = what the clients were told.
        stories = await community.fetch(
            "SELECT id::text AS id, up, down, score FROM stories WHERE status = 'published'"
        )
        rows = {
            (r["t"], r["u"]): r["value"]
            for r in await community.fetch(
                "SELECT target_id::text AS t, user_id AS u, value FROM votes WHERE target_type = 'story'"
            )
        }
        tally: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
        for (sid, _), value in rows.items():
            tally[sid][0 if value > 0 else 1] += 1
        counter_mismatch = [
            s["id"]
            for s in stories
            if (s["up"], s["down"], s["score"])
            != (tally[s["id"]][0], tally[s["id"]][1], tally[s["id"]][0] - tally[s["id"]][1])
        ]
        told_mismatch = []
        for key in set(run.votes_told) | set(run.vote_unsure) | set(rows):
            stored_value = rows.get(key, 0)
            allowed = run.vote_unsure.get(key, {run.votes_told.get(key, 0)})
            if stored_value not in allowed:
                told_mismatch.append((key, stored_value, allowed))
        popular = [s for s in stories if s["id"] in run.popular]
        notified = await community.fetchval("SELECT count(*) FROM notifications")
        deliveries = {
            f"{r['channel']} {r['status']}": r["n"]
            for r in await community.fetch(
                "SELECT channel, status, count(*) AS n FROM notification_deliveries GROUP BY 1, 2 ORDER BY 1, 2"
            )
        }
        return {
            "drain wait (s)": round(drain_seconds, 1)
            if drain_seconds < DRAIN_TIMEOUT
            else f"{drain_seconds:.0f}: NOT DRAINED, the event figures below are early",
            "events published (outbox rows, all services)": len(published),
            "  per database": dict(sorted(per_service.items())),
            "events never published": unpublished,
            "events seen on the '#' tap": len(set(seen)),
            "events lost before the tap (published, not seen)": len(set(published) - set(seen)),
            "events duplicated on the tap (redeliveries)": len(seen) - len(set(seen)),
            "events stored by Analytics (raw rows)": sum(stored.values()),
            "events lost by Analytics (published, no raw row)": len(set(published) - set(stored)),
            "events counted twice by Analytics": sum(1 for n in stored.values() if n > 1),
            "raw rows of no outbox event": len(set(stored) - set(published)),
            "conversations": sum(convs.values()),
            "users with conversations != regular reservations settled": len(conv_mismatch),
            "users over the regular allowance (5 + referral bonus)": len(conv_over),
            "stories generated": sum(generated.values()),
            "users with stories generated != story quota charged": len(story_mismatch),
            "users over the story allowance (1 Free, +20 Pro)": len(story_over),
            "images generated": sum(images.values()),
            "users with images generated != image_gen quota charged": len(image_mismatch),
            "users over the Pro image allowance (5)": len(image_over),
            "premium replies (premium model)": sum(premium.values()),
            "users with premium replies != premium quota charged": len(premium_mismatch),
            "users with premium replies != what the client was told (unsure after a timeout)": (
                f"{len(premium_told_mismatch)} ({len(run.premium_unsure)})"
            ),
            "users over the Pro premium allowance (100 + premium messages won)": len(premium_over),
            "recognitions: model calls stored / repeats answered from the store": (
                f"{sum(recognised.values())} / {sum(run.recognitions_cached.values())}"
            ),
            "users with recognitions stored != image_recognition charged": len(recognition_mismatch),
            "users with recognitions stored != uncached answers told (unsure)": (
                f"{len(recognition_told_mismatch)} ({len(run.recognition_unsure)})"
            ),
            "users over the Pro recognition allowance (10)": len(recognition_over),
            "group conversations / replies stored": f"{len(groups)} / {sum(g['replies'] for g in groups)}",
            "group conversations whose replies != what the client was shown": len(group_mismatch),
            "group replies from outside the cast": group_strangers,
            "flip tickets flipped, by reward": dict(sorted(flip_kinds.items())),
            "rewards credited by Payment (reward_grants) / bonus units added": f"{len(grants)} / {sum(added.values())}",
            "flips without exactly one reward and one matching credit": len(flip_wrong),
            "double taps that revealed two rewards": run.flips_inexact,
            "rooms co-edited / edits acknowledged": (
                f"{len(run.room_edits)} / {sum(len(e) for e in run.room_edits.values())}"
            ),
            "acknowledged edits missing from the stored document / from the story": f"{room_missing} / {story_missing}",
            "exports checked / incomplete": f"{sum(run.exports_checked.values())} / {exports_incomplete}",
            "quota rows below zero": negative,
            "reservations still held": held,
            "published stories / popular (voted) stories": f"{len(stories)} / {len(popular)}",
            "votes stored / told by the clients (unsure after a timeout)": (
                f"{len(rows)} / {sum(1 for v in run.votes_told.values() if v)} ({len(run.vote_unsure)})"
            ),
            "popular stories' up/down": [(s["up"], s["down"]) for s in popular],
            "stories whose counters != their votes rows": len(counter_mismatch),
            "votes != what the client was told": len(told_mismatch),
            "notifications stored (in-app)": notified,
            "notification deliveries (email/push) by status": deliveries,
            "_lost": len(set(published) - set(seen)) + len(set(published) - set(stored)) + unpublished,
            "_twice": sum(1 for n in stored.values() if n > 1) + len(set(stored) - set(published)),
            "_overspent": len(conv_mismatch + conv_over + story_mismatch + story_over + image_mismatch + image_over)
            + len(premium_mismatch + premium_told_mismatch + premium_over)
            + len(recognition_mismatch + recognition_told_mismatch + recognition_over)
            + negative,
            "_flips": len(flip_wrong) + run.flips_inexact,
            "_rooms": room_missing + story_missing,
            "_exports": exports_incomplete,
            "_group": len(group_mismatch) + group_strangers,
            "_votes": len(counter_mismatch) + len(told_mismatch),
            "_held": held,
            "_examples": (
                told_mismatch[:3],
                counter_mismatch[:3],
                story_mismatch[:3],
                image_mismatch[:3],
                premium_mismatch[:3] + premium_told_mismatch[:3],
                recognition_mismatch[:3] + recognition_told_mismatch[:3],
                group_mismatch[:3],
                flip_wrong[:3],
            ),
        }
    finally:
        for conn in dbs.values():
            await conn.close()


def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


INFRA_COMMANDS = {"postgres": "PostgreSQL", "beam.smp": "RabbitMQ", "redis-server": "Redis", "node": "Azurite (node)"}


def infra_cpu() -> dict[int, tuple[str, float]]:
    """CPU seconds of the shared servers' processes, children reaped included (PostgreSQL's backends
    end with their connections; their time lands in the postmaster's). Approximate: the servers
    also serve the other engineers' runs."""
    out = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        comm = raw[raw.index("(") + 1 : raw.rindex(")")]
        if comm in INFRA_COMMANDS:
            f = raw.rsplit(")", 1)[1].split()
            out[int(entry.name)] = (INFRA_COMMANDS[comm], sum(int(x) for x in f[11:15]) / tick)
    return out


def infra_delta(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]) -> dict[str, float]:
    totals: dict[str, float] = collections.defaultdict(float)
    for pid, (name, seconds) in after.items():
        totals[name] += seconds - before.get(pid, (name, 0.0))[1]
    return dict(totals)


def own_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime
