"""Custom characters."""

from __future__ import annotations

import asyncpg

FIELDS = (
    "name",
    "series",
    "universe_id",
    "description",
    "personality",
    "greeting",
    "example_dialogue",
    "avatar_image_id",
    "visibility",
)


async def insert(conn: asyncpg.Connection, owner_id: str, values: dict) -> asyncpg.Record:
    return await conn.fetchrow(
        f"INSERT INTO characters (owner_id, {', '.join(FIELDS)})"
        f" VALUES ($1, {', '.join(f'${i}' for i in range(2, len(FIELDS) + 2))}) RETURNING *",
        owner_id,
        *(values.get(f) for f in FIELDS),
    )


async def get(conn: asyncpg.Connection, character_id) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM characters WHERE id = $1", character_id)


async def get_many(conn: asyncpg.Connection, ids: list) -> dict:
    rows = await conn.fetch("SELECT * FROM characters WHERE id = ANY($1::uuid[])", ids)
    return {r["id"]: r for r in rows}


async def update(conn: asyncpg.Connection, character_id, values: dict) -> asyncpg.Record:
    names = [f for f in FIELDS if f in values]
    sets = ", ".join(f"{n} = ${i}" for i, n in enumerate(names, start=2))
    return await conn.fetchrow(
        f"UPDATE characters SET {sets}, updated_at = now() WHERE id = $1 RETURNING *",
        character_id,
        *(values[n] for n in names),
    )


async def delete(conn: asyncpg.Connection, character_id) -> None:
    await conn.execute("DELETE FROM characters WHERE id = $1", character_id)


async def list_public(conn, *, sort: str, q: str | None, after: tuple | None, limit: int) -> list[asyncpg.Record]:
    key, cast = ("score", "integer") if sort == "top" else ("created_at", "timestamptz")
    return await conn.fetch(
        "SELECT * FROM characters WHERE visibility = 'public' AND status = 'active'"
        " AND ($1::text IS NULL OR name ILIKE '%' || $1 || '%' OR series ILIKE '%' || $1 || '%')"
        f" AND ($2::boolean IS FALSE OR ({key}, id) < ($3::{cast}, $4::uuid))"
        f" ORDER BY {key} DESC, id DESC LIMIT $5",
        q,
        after is not None,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )


async def list_owned(conn, owner_id: str, *, q: str | None, after: tuple | None, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT * FROM characters WHERE owner_id = $1"
        " AND ($2::text IS NULL OR name ILIKE '%' || $2 || '%' OR series ILIKE '%' || $2 || '%')"
        " AND ($3::boolean IS FALSE OR (created_at, id) < ($4::timestamptz, $5::uuid))"
        " ORDER BY created_at DESC, id DESC LIMIT $6",
        owner_id,
        q,
        after is not None,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )


async def delete_owned_by(conn, owner_id: str) -> list:
    return [r["id"] for r in await conn.fetch("DELETE FROM characters WHERE owner_id = $1 RETURNING id", owner_id)]
