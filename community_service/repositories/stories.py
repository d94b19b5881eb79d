"""Stories and their versions."""

from __future__ import annotations

import asyncpg

_SNAPSHOT = "title, body, step, universe, characters, scenario"


async def insert_draft(conn, author_id: str, source: dict | None) -> asyncpg.Record:
    row = await conn.fetchrow("INSERT INTO stories (author_id, source) VALUES ($1, $2) RETURNING *", author_id, source)
    await record_version(conn, row, "created", author_id)
    return row


async def record_version(conn, row: asyncpg.Record, change: str, editor_id: str) -> None:
    await conn.execute(
        f"INSERT INTO story_versions (story_id, version, {_SNAPSHOT}, change, editor_id)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        row["id"],
        row["version"],
        row["title"],
        row["body"],
        row["step"],
        row["universe"],
        row["characters"],
        row["scenario"],
        change,
        editor_id,
    )


async def get(conn, story_id) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM stories WHERE id = $1", story_id)


async def get_for_update(conn, story_id) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM stories WHERE id = $1 FOR UPDATE", story_id)


async def get_by_share_token(conn, token: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM stories WHERE share_token = $1", token)


_EDITABLE = ("title", "body", "step", "universe", "characters", "scenario")


async def new_version(conn, story_id, values: dict, change: str, editor_id: str) -> asyncpg.Record:
    """The next version with `values` changed (the caller holds the row lock), recorded in the history."""
    names = [n for n in _EDITABLE if n in values]
    sets = "".join(f", {n} = ${i}" for i, n in enumerate(names, start=2))
    row = await conn.fetchrow(
        f"UPDATE stories SET version = version + 1, updated_at = now(){sets} WHERE id = $1 RETURNING *",
        story_id,
        *(values[n] for n in names),
    )
    await record_version(conn, row, change, editor_id)
    return row


async def publish(conn, story_id, visibility: str, hot: float) -> asyncpg.Record:
    return await conn.fetchrow(
        "UPDATE stories SET status = 'published', visibility = $2, hot = $3,"
        " published_at = coalesce(published_at, now()), updated_at = now() WHERE id = $1 RETURNING *",
        story_id,
        visibility,
        hot,
    )


async def set_share_token(conn, story_id, token: str) -> str:
    """The story's share token: the existing one, else `token`."""
    return await conn.fetchval(
        "UPDATE stories SET share_token = coalesce(share_token, $2) WHERE id = $1 RETURNING share_token",
        story_id,
        token,
    )


async def versions(conn, story_id) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT version, title, body, step, change, editor_id, created_at FROM story_versions"
        " WHERE story_id = $1 ORDER BY version DESC",
        story_id,
    )


async def delete(conn, story_id) -> None:
    await conn.execute("DELETE FROM stories WHERE id = $1", story_id)


_FEED = {"hot": ("hot", "float8"), "new": ("published_at", "timestamptz"), "top": ("score", "integer")}


async def feed(
    conn, *, sort: str, q: str | None, after: tuple | None, limit: int, voter_id: str
) -> list[asyncpg.Record]:
    """Published public stories (removed ones are status 'removed' and never match), each with the
    voter's vote (`my_vote`, NULL when none) in the same round trip. Without and with a cursor are
    two statements, so a later page is an index range scan starting at the cursor (one statement
    with `$cursor IS NULL OR (key, id) < ...` scanned from the top)."""
    key, cast = _FEED[sort]
    where = "status = 'published' AND visibility = 'public' AND ($1::text IS NULL OR title ILIKE '%' || $1 || '%')"
    if after is None:
        page = f"SELECT * FROM stories WHERE {where} ORDER BY {key} DESC, id DESC LIMIT $3"
        args = (q, voter_id, limit)
    else:
        page = (
            f"SELECT * FROM stories WHERE {where} AND ({key}, id) < ($4::{cast}, $5::uuid)"
            f" ORDER BY {key} DESC, id DESC LIMIT $3"
        )
        args = (q, voter_id, limit, after[0], after[1])
    return await conn.fetch(
        f"SELECT s.*, v.value AS my_vote FROM ({page}) s LEFT JOIN votes v"
        " ON v.target_type = 'story' AND v.target_id = s.id AND v.user_id = $2"
        f" ORDER BY s.{key} DESC, s.id DESC",
        *args,
    )


async def list_authored(conn, author_id: str, *, q: str | None, after: tuple | None, limit: int):
    where = "author_id = $1 AND status <> 'removed' AND ($2::text IS NULL OR title ILIKE '%' || $2 || '%')"
    if after is None:
        return await conn.fetch(
            f"SELECT * FROM stories WHERE {where} ORDER BY updated_at DESC, id DESC LIMIT $3", author_id, q, limit
        )
    return await conn.fetch(
        f"SELECT * FROM stories WHERE {where} AND (updated_at, id) < ($3::timestamptz, $4::uuid)"
        " ORDER BY updated_at DESC, id DESC LIMIT $5",
        author_id,
        q,
        after[0],
        after[1],
        limit,
    )


async def remove_authored_by(conn, author_id: str) -> list:
    """A deleted user's stories: published ones become 'removed' with their text erased (links to
    them answer 404, feeds drop them), drafts are deleted. Returns the removed ids."""
    removed = await conn.fetch(
        "UPDATE stories SET status = 'removed', title = '', body = '', source = NULL, universe = NULL,"
        " characters = NULL, scenario = NULL, share_token = NULL, author_id = '', updated_at = now()"
        " WHERE author_id = $1 AND status = 'published' RETURNING id",
        author_id,
    )
    ids = [r["id"] for r in removed]
    if ids:
        await conn.execute("DELETE FROM story_versions WHERE story_id = ANY($1::uuid[])", ids)
    await conn.execute("DELETE FROM stories WHERE author_id = $1", author_id)
    return ids
