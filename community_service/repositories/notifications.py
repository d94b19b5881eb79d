"""SQL for notifications: rows and their per-user sequence, preferences, devices, recipients' email
addresses and the delivery queue. Plain functions over a connection whose caller owns the transaction."""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson

# The NOTIFY channels: new notifications (the live streams), new deliveries (the delivery workers).
CHANNEL = "community_notifications"
DELIVERY_CHANNEL = "community_deliveries"
# PostgreSQL's payload limit is 8000 bytes; a bigger notification is announced by its sequence only.
MAX_PAYLOAD = 7900

COLUMNS = "id, user_id, seq, kind, title, body, data, created_at, read_at"

# Drafts new to (user_id, dedup_key) get the user's next sequence numbers (the counter row lock
# orders a user's notifications, so they commit in sequence order); a draft that a concurrent
# transaction inserted first is skipped by ON CONFLICT (its number stays unused: a gap, harmless).
_INSERT = """
WITH d AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[])
        WITH ORDINALITY AS d(user_id, kind, title, body, dedup_key, data, ord)
), fresh AS (
    SELECT d.* FROM d
    WHERE NOT EXISTS (SELECT 1 FROM notifications n WHERE n.user_id = d.user_id AND n.dedup_key = d.dedup_key)
), counts AS (
    SELECT user_id, count(*) AS n FROM fresh GROUP BY user_id ORDER BY user_id
), bumped AS (
    INSERT INTO notification_counters AS c (user_id, last_seq)
    SELECT user_id, n FROM counts ORDER BY user_id
    ON CONFLICT (user_id) DO UPDATE SET last_seq = c.last_seq + EXCLUDED.last_seq
    RETURNING user_id, last_seq
)
INSERT INTO notifications (user_id, seq, kind, title, body, data, dedup_key)
SELECT f.user_id, b.last_seq - c.n + row_number() OVER (PARTITION BY f.user_id ORDER BY f.ord),
       f.kind, f.title, f.body, f.data::jsonb, f.dedup_key
FROM fresh f JOIN bumped b USING (user_id) JOIN counts c USING (user_id)
ON CONFLICT DO NOTHING
RETURNING id, user_id, seq, kind, title, body, data, created_at, read_at
"""


async def insert_many(conn: asyncpg.Connection, drafts: list) -> list[asyncpg.Record]:
    if not drafts:
        return []
    return await conn.fetch(
        _INSERT,
        [d.user_id for d in drafts],
        [d.kind for d in drafts],
        [d.title for d in drafts],
        [d.body for d in drafts],
        [d.dedup_key for d in drafts],
        [orjson.dumps(d.data).decode() for d in drafts],
    )


def as_dict(row: asyncpg.Record) -> dict[str, Any]:
    data = row["data"]
    return {
        "id": str(row["id"]),
        "seq": row["seq"],
        "kind": row["kind"],
        "title": row["title"],
        "body": row["body"],
        "data": orjson.loads(data) if isinstance(data, str) else data,
        "created_at": row["created_at"].isoformat(),
        "read": row["read_at"] is not None,
    }


async def announce(conn: asyncpg.Connection, rows: list[asyncpg.Record]) -> None:
    """NOTIFY each new notification (sent by PostgreSQL at commit, so never one that rolls back).
    Payload: `<user_id>\\t<notification JSON>`, or `<user_id>\\t<seq>` when too big."""
    if not rows:
        return
    payloads = []
    for row in sorted(rows, key=lambda r: (r["user_id"], r["seq"])):  # a user's in sequence order
        body = orjson.dumps(as_dict(row)).decode()
        if len(body) + len(row["user_id"]) + 1 > MAX_PAYLOAD:
            body = str(row["seq"])
        payloads.append(f"{row['user_id']}\t{body}")
    await conn.execute("SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p", CHANNEL, payloads)


async def page(
    conn: asyncpg.Connection, user_id: str, *, before_seq: int | None, unread: bool, limit: int
) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT {COLUMNS} FROM notifications WHERE user_id = $1 AND ($2::bigint IS NULL OR seq < $2)"
        " AND (NOT $3 OR read_at IS NULL) ORDER BY seq DESC LIMIT $4",
        user_id,
        before_seq,
        unread,
        limit,
    )


async def after(conn: asyncpg.Connection, user_id: str, seq: int, limit: int) -> list[asyncpg.Record]:
    """What a reconnecting stream missed: sequence numbers above `seq`, oldest first."""
    return await conn.fetch(
        f"SELECT {COLUMNS} FROM notifications WHERE user_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        user_id,
        seq,
        limit,
    )


async def last_seq(conn: asyncpg.Connection, user_id: str) -> int:
    return await conn.fetchval("SELECT last_seq FROM notification_counters WHERE user_id = $1", user_id) or 0


async def unread_count(conn: asyncpg.Connection, user_id: str) -> int:
    return await conn.fetchval("SELECT count(*) FROM notifications WHERE user_id = $1 AND read_at IS NULL", user_id)


async def mark_read(conn: asyncpg.Connection, user_id: str, ids: list | None) -> int:
    """Marks the user's own unread notifications among `ids` (all when None); others' ids match nothing."""
    if ids is None:
        status = await conn.execute(
            "UPDATE notifications SET read_at = now() WHERE user_id = $1 AND read_at IS NULL", user_id
        )
    else:
        status = await conn.execute(
            "UPDATE notifications SET read_at = now() WHERE user_id = $1 AND id = ANY($2::uuid[]) AND read_at IS NULL",
            user_id,
            ids,
        )
    return int(status.split()[-1])


# Preferences ------------------------------------------------------------------------------------


async def preferences(conn: asyncpg.Connection, user_ids: list[str]) -> dict[str, dict[tuple[str, str], bool]]:
    """user -> {(channel, kind): enabled}, only what differs from the defaults."""
    rows = await conn.fetch(
        "SELECT user_id, channel, kind, enabled FROM notification_preferences WHERE user_id = ANY($1::text[])",
        user_ids,
    )
    out: dict[str, dict[tuple[str, str], bool]] = {}
    for r in rows:
        out.setdefault(r["user_id"], {})[(r["channel"], r["kind"])] = r["enabled"]
    return out


async def set_preferences(conn: asyncpg.Connection, user_id: str, changes: list[tuple[str, str, bool]]) -> None:
    await conn.execute(
        "INSERT INTO notification_preferences (user_id, channel, kind, enabled)"
        " SELECT $1, c, k, e FROM unnest($2::text[], $3::text[], $4::boolean[]) AS u(c, k, e)"
        " ON CONFLICT (user_id, channel, kind) DO UPDATE SET enabled = EXCLUDED.enabled",
        user_id,
        [c for c, _, _ in changes],
        [k for _, k, _ in changes],
        [e for _, _, e in changes],
    )


# Devices and recipients -------------------------------------------------------------------------


async def add_device(conn: asyncpg.Connection, user_id: str, token: str, platform: str) -> asyncpg.Record:
    """A token belongs to one device: registered again by another user (the device changed hands),
    it moves to that user."""
    return await conn.fetchrow(
        "INSERT INTO notification_devices (token, user_id, platform) VALUES ($1, $2, $3)"
        " ON CONFLICT (token) DO UPDATE SET user_id = EXCLUDED.user_id, platform = EXCLUDED.platform,"
        " created_at = CASE WHEN notification_devices.user_id = EXCLUDED.user_id"
        " THEN notification_devices.created_at ELSE now() END"
        " RETURNING token, platform, created_at",
        token,
        user_id,
        platform,
    )


async def remove_device(conn: asyncpg.Connection, user_id: str, token: str) -> bool:
    status = await conn.execute("DELETE FROM notification_devices WHERE token = $1 AND user_id = $2", token, user_id)
    return status != "DELETE 0"


async def drop_device(conn: asyncpg.Connection, token: str) -> None:
    """Expo said DeviceNotRegistered: nothing more goes to it."""
    await conn.execute("DELETE FROM notification_devices WHERE token = $1", token)
    await conn.execute(
        "UPDATE notification_deliveries SET status = 'dropped', last_error = 'DeviceNotRegistered'"
        " WHERE device_token = $1 AND status = 'pending'",
        token,
    )


async def targets(conn: asyncpg.Connection, user_ids: list[str]) -> list[asyncpg.Record]:
    """For each user with anything set: their preferences (channel, kind, enabled), address and
    devices, in one round trip (the consumer's hot path)."""
    return await conn.fetch(
        """
        SELECT u.user_id,
               (SELECT email FROM notification_recipients r WHERE r.user_id = u.user_id) AS email,
               (SELECT array_agg(token ORDER BY created_at) FROM notification_devices d
                 WHERE d.user_id = u.user_id) AS devices,
               (SELECT array_agg(channel || ':' || kind || ':' || enabled::text) FROM notification_preferences p
                 WHERE p.user_id = u.user_id) AS prefs
        FROM unnest($1::text[]) AS u(user_id)
        """,
        user_ids,
    )


async def set_email(conn: asyncpg.Connection, user_id: str, email: str | None) -> None:
    await conn.execute(
        "INSERT INTO notification_recipients (user_id, email) VALUES ($1, $2)"
        " ON CONFLICT (user_id) DO UPDATE SET email = EXCLUDED.email, updated_at = now()"
        " WHERE notification_recipients.email IS DISTINCT FROM EXCLUDED.email",
        user_id,
        email,
    )


async def erase_user(conn: asyncpg.Connection, user_id: str) -> dict[str, int]:
    """Everything kept about the user here (their deliveries go with their notifications)."""
    counts = {}
    for table in (
        "notification_deliveries",
        "notifications",
        "notification_counters",
        "notification_preferences",
        "notification_devices",
        "notification_recipients",
    ):
        status = await conn.execute(f"DELETE FROM {table} WHERE user_id = $1", user_id)
        counts[table] = int(status.split()[-1])
    return counts


# Delivery queue ---------------------------------------------------------------------------------


async def enqueue(conn: asyncpg.Connection, rows: list[tuple[Any, str, str, str | None]]) -> None:
    """(notification_id, user_id, channel, device_token) rows to send; the delivery workers are
    woken when the transaction commits."""
    if not rows:
        return
    await conn.execute("SELECT pg_notify($1, '')", DELIVERY_CHANNEL)
    await conn.execute(
        "INSERT INTO notification_deliveries (notification_id, user_id, channel, device_token)"
        " SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[]) ON CONFLICT DO NOTHING",
        [r[0] for r in rows],
        [r[1] for r in rows],
        [r[2] for r in rows],
        [r[3] for r in rows],
    )


async def claim_due(conn: asyncpg.Connection, limit: int, lease_seconds: float) -> list[asyncpg.Record]:
    """Due deliveries, leased: moved `lease_seconds` ahead so no other worker takes them meanwhile
    (if this one dies mid-send, they are due again after the lease)."""
    return await conn.fetch(
        """
        WITH due AS (
            SELECT id FROM notification_deliveries
            WHERE status = 'pending' AND next_attempt_at <= now()
            ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED
        )
        UPDATE notification_deliveries d
        SET next_attempt_at = now() + make_interval(secs => $2), attempts = d.attempts + 1
        FROM due, notifications n LEFT JOIN notification_recipients r ON r.user_id = n.user_id
        WHERE d.id = due.id AND n.id = d.notification_id
        RETURNING d.id, d.channel, d.device_token, d.attempts, d.user_id, n.id AS notification_id,
                  n.seq, n.kind, n.title, n.body, n.data, r.email
        """,
        limit,
        lease_seconds,
    )


async def mark_sent(conn: asyncpg.Connection, ids: list[int], tickets: list[str | None], receipt_delay: float) -> None:
    """Sent; push rows with a ticket wait for its receipt, the others are done."""
    await conn.execute(
        """
        UPDATE notification_deliveries d
        SET status = CASE WHEN u.ticket IS NULL THEN 'delivered' ELSE 'sent' END, ticket_id = u.ticket,
            sent_at = now(), last_error = NULL,
            receipt_due_at = CASE WHEN u.ticket IS NULL THEN NULL ELSE now() + make_interval(secs => $3) END
        FROM unnest($1::bigint[], $2::text[]) AS u(id, ticket)
        WHERE d.id = u.id
        """,
        ids,
        tickets,
        receipt_delay,
    )


async def retry_later(conn: asyncpg.Connection, ids: list[int], delays: list[float], error: str) -> None:
    await conn.execute(
        "UPDATE notification_deliveries d SET next_attempt_at = now() + make_interval(secs => u.delay),"
        " last_error = $3 FROM unnest($1::bigint[], $2::float8[]) AS u(id, delay) WHERE d.id = u.id",
        ids,
        delays,
        error[:500],
    )


async def finish(conn: asyncpg.Connection, ids: list[int], status: str, error: str | None) -> None:
    await conn.execute(
        "UPDATE notification_deliveries SET status = $2, last_error = $3, receipt_due_at = NULL WHERE id = ANY($1)",
        ids,
        status,
        error[:500] if error else None,
    )


async def claim_receipts(conn: asyncpg.Connection, limit: int, lease_seconds: float) -> list[asyncpg.Record]:
    return await conn.fetch(
        """
        WITH due AS (
            SELECT id FROM notification_deliveries
            WHERE status = 'sent' AND receipt_due_at <= now()
            ORDER BY receipt_due_at LIMIT $1 FOR UPDATE SKIP LOCKED
        )
        UPDATE notification_deliveries d SET receipt_due_at = now() + make_interval(secs => $2)
        FROM due WHERE d.id = due.id
        RETURNING d.id, d.ticket_id, d.device_token, d.sent_at
        """,
        limit,
        lease_seconds,
    )
