"""The scenario library (public and personal)."""

from __future__ import annotations

import asyncpg

FIELDS = ("title", "setting", "tone", "themes", "characters", "opening_line", "visibility")


async def insert(conn, owner_id: str, values: dict, hot: float) -> asyncpg.Record:
    return await conn.fetchrow(
        f"INSERT INTO scenarios (owner_id, hot, {', '.join(FIELDS)})"
        f" VALUES ($1, $2, {', '.join(f'${i}' for i in range(3, len(FIELDS) + 3))}) RETURNING *",
        owner_id,
        hot,
        *(values.get(f) for f in FIELDS),
    )


async def get(conn, scenario_id) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM scenarios WHERE id = $1", scenario_id)


async def update(conn, scenario_id, values: dict) -> asyncpg.Record:
    names = [f for f in FIELDS if f in values]
    sets = ", ".join(f"{n} = ${i}" for i, n in enumerate(names, start=2))
    return await conn.fetchrow(
        f"UPDATE scenarios SET {sets}, updated_at = now() WHERE id = $1 RETURNING *",
        scenario_id,
        *(values[n] for n in names),
    )


async def delete(conn, scenario_id) -> None:
    await conn.execute("DELETE FROM scenarios WHERE id = $1", scenario_id)


_SORT = {"new": ("created_at", "timestamptz"), "top": ("score", "integer"), "hot": ("hot", "float8")}


async def list_page(
    conn, user_id: str, *, scope: str, sort: str, q: str | None, after: tuple | None, limit: int
) -> list[asyncpg.Record]:
    key, cast = _SORT[sort]
    return await conn.fetch(
        "SELECT * FROM scenarios WHERE"
        " (CASE WHEN $1 = 'mine' THEN owner_id = $2 ELSE visibility = 'public' AND status = 'active' END)"
        " AND ($3::text IS NULL OR title ILIKE '%' || $3 || '%' OR setting ILIKE '%' || $3 || '%')"
        f" AND ($4::boolean IS FALSE OR ({key}, id) < ($5::{cast}, $6::uuid))"
        f" ORDER BY {key} DESC, id DESC LIMIT $7",
        scope,
        user_id,
        q,
        after is not None,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )


async def delete_owned_by(conn, owner_id: str) -> list:
    return [r["id"] for r in await conn.fetch("DELETE FROM scenarios WHERE owner_id = $1 RETURNING id", owner_id)]
