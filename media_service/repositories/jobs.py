"""SQL of `generation_jobs` (async image generation). Plain functions over a connection whose
caller owns the transaction."""

from __future__ import annotations

import uuid

import asyncpg
import orjson

from media_service.repositories import media as media_repo

_COLUMNS = (
    "id, user_id, status, request, reservation_id, settled, image_ids, error, attempts, lease_until,"
    " created_at, updated_at"
)


def _record(row: asyncpg.Record | None) -> dict | None:
    if row is None:
        return None
    out = dict(row)
    for key in ("request", "error"):
        if isinstance(out[key], str):
            out[key] = orjson.loads(out[key])
    return out


async def insert_job(conn, job_id: uuid.UUID, user_id: str, request: dict, reservation_id: str | None) -> dict:
    row = await conn.fetchrow(
        f"""
        INSERT INTO generation_jobs (id, user_id, request, reservation_id)
        VALUES ($1, $2::uuid, $3::jsonb, $4::uuid)
        RETURNING {_COLUMNS}
        """,
        job_id,
        user_id,
        orjson.dumps(request).decode(),
        reservation_id,
    )
    return _record(row)


async def get_owned(conn, job_id: uuid.UUID, user_id: str) -> dict | None:
    return _record(
        await conn.fetchrow(
            f"SELECT {_COLUMNS} FROM generation_jobs WHERE id = $1 AND user_id = $2::uuid", job_id, user_id
        )
    )


async def claim(conn, job_id: uuid.UUID | None, lease_seconds: float, limit: int) -> list[dict]:
    """Take jobs to run: queued or running, with no valid lease (`job_id`: that one only). Each
    claimed job is `running` under a lease of `lease_seconds`; SKIP LOCKED lets instances share."""
    rows = await conn.fetch(
        f"""
        UPDATE generation_jobs SET status = 'running', attempts = attempts + 1, updated_at = now(),
               lease_until = now() + make_interval(secs => $2)
         WHERE id IN (
               SELECT id FROM generation_jobs
                WHERE status IN ('queued', 'running') AND (lease_until IS NULL OR lease_until < now())
                  AND ($1::uuid IS NULL OR id = $1)
                ORDER BY created_at
                LIMIT $3
                  FOR UPDATE SKIP LOCKED)
        RETURNING {_COLUMNS}
        """,
        job_id,
        lease_seconds,
        limit,
    )
    return [_record(r) for r in rows]


async def renew_leases(conn, job_ids: list[uuid.UUID], lease_seconds: float) -> None:
    await conn.execute(
        "UPDATE generation_jobs SET lease_until = now() + make_interval(secs => $2)"
        " WHERE id = ANY($1::uuid[]) AND status = 'running'",
        job_ids,
        lease_seconds,
    )


async def drop_leases(conn, job_ids: list[uuid.UUID]) -> None:
    """This process stops (shutdown): its running jobs are for whoever scans next."""
    await conn.execute(
        "UPDATE generation_jobs SET lease_until = NULL WHERE id = ANY($1::uuid[]) AND status = 'running'", job_ids
    )


async def set_reservation(conn, job_id: uuid.UUID, reservation_id: str | None) -> None:
    await conn.execute(
        "UPDATE generation_jobs SET reservation_id = $2::uuid, updated_at = now() WHERE id = $1", job_id, reservation_id
    )


async def finish(
    conn, job_id: uuid.UUID, status: str, *, image_ids: list[uuid.UUID] | None = None, error: dict | None = None
) -> bool:
    """Mark a running job finished; False when it is not running any more (another worker did it)."""
    done = await conn.fetchval(
        """
        UPDATE generation_jobs SET status = $2, image_ids = COALESCE($3::uuid[], image_ids), error = $4::jsonb,
               lease_until = NULL, updated_at = now()
         WHERE id = $1 AND status = 'running'
        RETURNING true
        """,
        job_id,
        status,
        image_ids,
        orjson.dumps(error).decode() if error is not None else None,
    )
    return bool(done)


async def mark_settled(conn, job_id: uuid.UUID) -> None:
    await conn.execute("UPDATE generation_jobs SET settled = true WHERE id = $1", job_id)


async def unsettled_finished(conn, limit: int) -> list[dict]:
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM generation_jobs WHERE status IN ('succeeded', 'failed') AND NOT settled LIMIT $1",
        limit,
    )
    return [_record(r) for r in rows]


async def delete_user(conn, user_id: str) -> int:
    result = await conn.execute("DELETE FROM generation_jobs WHERE user_id = $1::uuid", user_id)
    return int(result.split()[-1])


async def images_of(conn, image_ids: list[uuid.UUID], user_id: str) -> list[asyncpg.Record]:
    """The user's image rows among a job's images (one deleted since is simply absent)."""
    return await conn.fetch(
        f"SELECT {media_repo._COLUMNS} FROM media_metadata WHERE id = ANY($1::uuid[]) AND user_id = $2::uuid",
        image_ids,
        user_id,
    )
