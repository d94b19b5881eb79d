"""SQL of `media_blobs` (the blob registry) and `media_metadata` (images and audio).
Plain functions over a connection whose caller owns the transaction."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

from shared.bus.outbox import OUTBOX_INSERT_ARRAYS, outbox_arrays
from shared.events import Event

_COLUMNS = (
    "id, user_id, kind, purpose, blob_name, thumbnail_name, mime, bytes, width, height, duration_ms,"
    " provider, model, prompt, created_at"
)


async def lease_blobs(conn, names: list[str], content_types: list[str], sizes: list[int], lease_seconds: float) -> None:
    """Take a lease on each blob an upload is about to write (creating its registry row). While a
    lease is valid the sweep leaves the blob alone; an expired lease (a crashed upload) is void,
    so its count starts again from 1."""
    await conn.execute(
        """
        INSERT INTO media_blobs AS b (name, content_type, bytes, leases, lease_until)
        SELECT n, t, s, 1, now() + make_interval(secs => $4)
          FROM unnest($1::text[], $2::text[], $3::bigint[]) AS u(n, t, s)
         ORDER BY n
        ON CONFLICT (name) DO UPDATE SET
            leases = CASE WHEN b.lease_until IS NULL OR b.lease_until < now() THEN 1 ELSE b.leases + 1 END,
            lease_until = GREATEST(COALESCE(b.lease_until, now()), EXCLUDED.lease_until)
        """,
        names,
        content_types,
        sizes,
        lease_seconds,
    )


async def end_leases(conn, names: list[str]) -> int:
    """Give back this upload's leases, if still valid: returns how many were (all, or the upload
    outlived its lease and must write its blobs again).

    Every transaction locks registry rows in name order (here, in lease_blobs and in the refs
    trigger): an UPDATE alone locks them in whatever order its scan meets them, which is the
    heap's, and that changes as rows are updated; two uploads of the same bytes then deadlocked."""
    await conn.execute("SELECT 1 FROM media_blobs WHERE name = ANY($1::text[]) ORDER BY name FOR UPDATE", names)
    rows = await conn.fetch(
        "UPDATE media_blobs SET leases = leases - 1"
        " WHERE name = ANY($1::text[]) AND lease_until > now() AND leases > 0 RETURNING name",
        names,
    )
    return len(rows)


# end_leases + the media row's INSERT + emit in one statement: one round trip instead of BEGIN, lock,
# update, insert, event, COMMIT. `locked` takes the registry rows in name order (as end_leases
# does); `ok` (all leases still valid) is a one-time filter evaluated before anything is written,
# so an upload that outlived a lease changes nothing, as the rolled-back transaction did. The
# refs trigger and the foreign keys fire at the end of the statement, after these writes.
_FINISH_UPLOAD = f"""
    WITH locked AS (
        SELECT name, lease_until > now() AND leases > 0 AS valid
          FROM media_blobs WHERE name = ANY($15::text[]) ORDER BY name FOR UPDATE
    ), ok AS (
        SELECT count(*) FILTER (WHERE valid) = cardinality($15::text[]) AS ok FROM locked
    ), ended AS (
        UPDATE media_blobs SET leases = leases - 1
         WHERE name = ANY($15::text[]) AND (SELECT ok FROM ok)
        RETURNING name
    ), events AS (
        {OUTBOX_INSERT_ARRAYS.format(ids="$16", types="$17", bodies="$18")} WHERE (SELECT ok FROM ok)
    )
    INSERT INTO media_metadata (id, user_id, kind, purpose, blob_name, thumbnail_name, mime, bytes, width,
                                height, duration_ms, provider, model, prompt)
    SELECT $1, $2::uuid, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14
     WHERE (SELECT ok FROM ok)
    RETURNING {_COLUMNS}
"""


async def finish_upload(
    conn,
    names: list[str],
    events: list[Event],
    *,
    media_id: uuid.UUID,
    user_id: str,
    kind: str,
    purpose: str | None,
    blob_name: str,
    thumbnail_name: str | None,
    mime: str,
    size: int,
    width: int | None = None,
    height: int | None = None,
    duration_ms: int | None = None,
    provider: str | None = None,
    model: str | None = None,
    prompt: str | None = None,
) -> asyncpg.Record | None:
    """Give back the upload's leases on `names`, insert its media row and record `events`, in
    one statement. None (and nothing changed) when a lease was no longer valid: the upload
    outlived it and must write its blobs again."""
    return await conn.fetchrow(
        _FINISH_UPLOAD,
        media_id,
        user_id,
        kind,
        purpose,
        blob_name,
        thumbnail_name,
        mime,
        size,
        width,
        height,
        duration_ms,
        provider,
        model,
        prompt,
        names,
        *outbox_arrays(events),
    )


async def get_owned(conn, media_id: uuid.UUID, user_id: str, kind: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM media_metadata WHERE id = $1 AND user_id = $2::uuid AND kind = $3",
        media_id,
        user_id,
        kind,
    )


async def list_owned(
    conn, user_id: str, kind: str, *, purpose: str | None, limit: int, before: tuple[datetime, uuid.UUID] | None
) -> list[asyncpg.Record]:
    """Newest first; `before` is the (created_at, id) of the last row of the previous page."""
    return await conn.fetch(
        f"""
        SELECT {_COLUMNS} FROM media_metadata
         WHERE user_id = $1::uuid AND kind = $2 AND ($3::text IS NULL OR purpose = $3)
           AND ($4::timestamptz IS NULL OR (created_at, id) < ($4, $5::uuid))
         ORDER BY created_at DESC, id DESC
         LIMIT $6
        """,
        user_id,
        kind,
        purpose,
        before[0] if before else None,
        before[1] if before else None,
        limit,
    )


async def delete_owned(conn, media_id: uuid.UUID, user_id: str, kind: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"DELETE FROM media_metadata WHERE id = $1 AND user_id = $2::uuid AND kind = $3 RETURNING {_COLUMNS}",
        media_id,
        user_id,
        kind,
    )


async def delete_user(conn, user_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(f"DELETE FROM media_metadata WHERE user_id = $1::uuid RETURNING {_COLUMNS}", user_id)


async def claim_unreferenced(conn, limit: int, names: list[str] | None = None) -> list[str]:
    """Lock blobs nothing references and no valid lease protects (call inside a transaction; the
    lock is held while the caller deletes them from storage). FOR UPDATE re-reads refs and leases
    of a row another transaction just changed, so a blob an upload leased or a row began to
    reference meanwhile is not taken; SKIP LOCKED lets concurrent sweeps share the work."""
    rows = await conn.fetch(
        """
        SELECT name FROM media_blobs
         WHERE refs = 0 AND (leases = 0 OR lease_until IS NULL OR lease_until < now())
           AND ($2::text[] IS NULL OR name = ANY($2::text[]))
         ORDER BY lease_until NULLS FIRST
         LIMIT $1
           FOR UPDATE SKIP LOCKED
        """,
        limit,
        names,
    )
    return [r["name"] for r in rows]


async def forget_blobs(conn, names: list[str]) -> None:
    await conn.execute("DELETE FROM media_blobs WHERE name = ANY($1::text[])", names)


async def blob_row(conn, name: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT name, refs, leases, lease_until FROM media_blobs WHERE name = $1", name)
