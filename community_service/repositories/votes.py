"""Votes: one per user and target; the target's counters move in the same statement."""

from __future__ import annotations

# The votable tables and what their row must satisfy to be voted on.
TABLES = {
    "story": ("stories", "status = 'published'"),
    "scenario": ("scenarios", "status = 'active'"),
    "character": ("characters", "status = 'active'"),
    "room": ("rooms", "status = 'active'"),
}


# Who may vote on a row of each table (stories: published ones; the others: active, public or the
# voter's own), and the stored hot value a vote moves, if any.
_VISIBLE = {
    "story": "t.status = 'published'",
    "scenario": "t.status = 'active' AND (t.visibility = 'public' OR t.owner_id = i.user_id)",
    "character": "t.status = 'active' AND (t.visibility = 'public' OR t.owner_id = i.user_id)",
    # A room as GET /rooms/{id} shows it: a public one to anyone, an invite-only one to its members;
    # a removed one to no one.
    "room": "t.status = 'active' AND (t.visibility = 'public' OR EXISTS (SELECT 1 FROM room_members m"
    " WHERE m.room_id = t.id AND m.user_id = i.user_id))",
}
_HOT_FROM = {"story": "published_at", "scenario": "created_at", "character": None, "room": None}

# Set (±1): the upsert inserts (previous 0), or flips the other value (previous -value), or, when
# the vote is already this value, locks the row and returns nothing (no change). Remove (0): the
# delete returns the value it removed. ON CONFLICT and DELETE both wait for a concurrent vote of
# the same user and act on the row it committed, so each delta is the right one. Each target's
# counters then move once by the batch's summed delta, under its row lock; every change also gets
# the counters as if the batch's votes had been applied one after another (window sum), which its
# story.voted event carries ($4/$5: the event's id and its JSON without those fields).
_CAST_MANY = """
WITH input AS (
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::int[], $4::uuid[], $5::text[])
        WITH ORDINALITY AS i(target_id, user_id, value, event_id, event, ord)
), visible AS (
    SELECT i.* FROM input i JOIN {table} t ON t.id = i.target_id AND {visible}
), upserted AS (
    INSERT INTO votes (target_type, target_id, user_id, value)
    SELECT $6, target_id, user_id, value FROM visible WHERE value <> 0
    ON CONFLICT (target_type, target_id, user_id)
        DO UPDATE SET value = EXCLUDED.value, updated_at = now() WHERE votes.value <> EXCLUDED.value
    RETURNING target_id, user_id, value::int, CASE WHEN xmax = 0 THEN 0 ELSE -value END::int AS previous
), deleted AS (
    DELETE FROM votes v USING visible i
     WHERE i.value = 0 AND v.target_type = $6 AND v.target_id = i.target_id AND v.user_id = i.user_id
    RETURNING v.target_id, v.user_id, 0 AS value, v.value::int AS previous
), changed AS (
    SELECT c.target_id, c.previous, i.ord,
           (c.value = 1)::int - (c.previous = 1)::int AS d_up, (c.value = -1)::int - (c.previous = -1)::int AS d_down
      FROM (SELECT * FROM upserted UNION ALL SELECT * FROM deleted) c
      JOIN input i ON i.target_id = c.target_id AND i.user_id = c.user_id
), per_target AS (
    SELECT target_id, sum(d_up)::int AS d_up, sum(d_down)::int AS d_down FROM changed GROUP BY target_id
), moved AS (
    UPDATE {table} t SET up = t.up + p.d_up, down = t.down + p.d_down, score = t.score + p.d_up - p.d_down{hot}
      FROM per_target p WHERE t.id = p.target_id
    RETURNING t.id, t.up, t.down, p.d_up, p.d_down{author}
), each_vote AS (
    SELECT c.ord, c.previous{m_author},
           (m.up - m.d_up + sum(c.d_up) OVER w)::int AS up, (m.down - m.d_down + sum(c.d_down) OVER w)::int AS down
      FROM changed c JOIN moved m ON m.id = c.target_id
    WINDOW w AS (PARTITION BY c.target_id ORDER BY c.ord)
){events}
SELECT i.ord, v.ord IS NOT NULL AS visible, e.previous,
       coalesce(e.up, m.up, t.up) AS up, coalesce(e.down, m.down, t.down) AS down
  FROM input i
  LEFT JOIN visible v ON v.ord = i.ord
  LEFT JOIN {table} t ON t.id = v.target_id
  LEFT JOIN moved m ON m.id = v.target_id
  LEFT JOIN each_vote e ON e.ord = i.ord"""

_EVENTS = """, events AS (
    INSERT INTO outbox_events (event_id, event_type, body)
    SELECT i.event_id, i.event::jsonb ->> 'event_type', convert_to((i.event::jsonb || jsonb_build_object('data',
        (i.event::jsonb -> 'data') || jsonb_build_object('author_id', e.author_id, 'previous', e.previous,
                                                        'score', e.up - e.down, 'up', e.up, 'down', e.down))
    )::text, 'UTF8')
      FROM each_vote e JOIN input i ON i.ord = e.ord WHERE i.event_id IS NOT NULL
)"""


def _cast_many_sql(target_type: str) -> str:
    table, _ = TABLES[target_type]
    hot_from = _HOT_FROM[target_type]
    story = target_type == "story"
    return _CAST_MANY.format(
        table=table,
        visible=_VISIBLE[target_type],
        hot=f", hot = community_hot(t.score + p.d_up - p.d_down, t.{hot_from})" if hot_from else "",
        author=", t.author_id" if story else "",
        m_author=", m.author_id" if story else "",
        events=_EVENTS if story else "",
    )


_CAST_MANY_SQL = {target_type: _cast_many_sql(target_type) for target_type in TABLES}


async def cast_many(conn, target_type: str, votes: list[tuple]) -> list:
    """Votes `(target_id, user_id, value ±1 or 0 to remove, event or None)` on targets of one type,
    no (target, user) twice, in one statement: the vote rows, each target's counters and stored hot
    moved by the deltas, and the events (their data completed with author_id, previous, score, up,
    down) in the outbox. One row per vote, in order: `visible` (false: the voter may not see the
    target), `previous` (None: the vote was already so, nothing changed), `up` and `down` after it."""
    rows = await conn.fetch(
        _CAST_MANY_SQL[target_type],
        [v[0] for v in votes],
        [v[1] for v in votes],
        [v[2] for v in votes],
        [v[3].event_id if v[3] is not None else None for v in votes],
        [v[3].to_bytes().decode() if v[3] is not None else None for v in votes],
        target_type,
    )
    return sorted(rows, key=lambda r: r["ord"])


async def move_counts(conn, target_type: str, target_id, d_up: int, d_down: int):
    """Relative increments: exact whatever else commits meanwhile. Returns the new counters."""
    table, _ = TABLES[target_type]
    return await conn.fetchrow(
        f"UPDATE {table} SET up = up + $2, down = down + $3, score = score + $2 - $3 WHERE id = $1"
        " RETURNING id, up, down, score",
        target_id,
        d_up,
        d_down,
    )


async def set_hot(conn, target_type: str, target_id, hot: float) -> None:
    table, _ = TABLES[target_type]
    await conn.execute(f"UPDATE {table} SET hot = $2 WHERE id = $1", target_id, hot)


async def target(conn, target_type: str, target_id):
    table, _ = TABLES[target_type]
    return await conn.fetchrow(f"SELECT * FROM {table} WHERE id = $1", target_id)


async def mine(conn, user_id: str, target_type: str, ids: list) -> dict:
    rows = await conn.fetch(
        "SELECT target_id, value FROM votes WHERE user_id = $1 AND target_type = $2 AND target_id = ANY($3::uuid[])",
        user_id,
        target_type,
        ids,
    )
    return {r["target_id"]: r["value"] for r in rows}


async def delete_by_user(conn, user_id: str) -> list:
    """A deleted user's votes, returned so their targets' counters can be moved back."""
    return await conn.fetch("DELETE FROM votes WHERE user_id = $1 RETURNING target_type, target_id, value", user_id)


async def delete_for_target(conn, target_type: str, target_id) -> None:
    await conn.execute("DELETE FROM votes WHERE target_type = $1 AND target_id = $2", target_type, target_id)


async def delete_for_targets(conn, target_type: str, target_ids: list) -> None:
    """The votes on deleted targets (votes.target_id has no foreign key: it names rows of several tables)."""
    await conn.execute(
        "DELETE FROM votes WHERE target_type = $1 AND target_id = ANY($2::uuid[])", target_type, target_ids
    )
