"""SQL of `image_recognitions` (stored recognition results, migration 005). Plain functions over a
connection whose caller owns the transaction (a pool of shared/db.py: JSONB as Python objects)."""

from __future__ import annotations

import json
from typing import Any


async def stored(conn, user_id: str, image_sha256: str, version: str) -> dict[str, Any] | None:
    """The stored result, or None (never recognised, or a request is recognising it now)."""
    raw = await conn.fetchval(
        "SELECT result FROM image_recognitions"
        " WHERE user_id = $1::uuid AND image_sha256 = $2 AND version = $3 AND result IS NOT NULL",
        user_id,
        image_sha256,
        version,
    )
    if isinstance(raw, str):  # a connection without shared/db.py's JSONB codec
        raw = json.loads(raw)
    return raw


async def claim(conn, user_id: str, image_sha256: str, version: str, seconds: float) -> bool:
    """Become the one request that asks the model for this key: true when no result is stored and
    no other claim is valid (an expired one, its process gone, is taken over)."""
    claimed = await conn.fetchval(
        """
        INSERT INTO image_recognitions AS r (user_id, image_sha256, version, claimed_until)
        VALUES ($1::uuid, $2, $3, now() + make_interval(secs => $4))
        ON CONFLICT (user_id, image_sha256, version) DO UPDATE SET claimed_until = EXCLUDED.claimed_until
         WHERE r.result IS NULL AND (r.claimed_until IS NULL OR r.claimed_until < now())
        RETURNING true
        """,
        user_id,
        image_sha256,
        version,
        seconds,
    )
    return bool(claimed)


async def save(conn, user_id: str, image_sha256: str, version: str, result: dict[str, Any]) -> None:
    """Store the claimed key's result (the row exists: the claim made it, and only erasure removes
    it, in which case the result is not kept)."""
    await conn.execute(
        "UPDATE image_recognitions SET result = $4, claimed_until = NULL"
        " WHERE user_id = $1::uuid AND image_sha256 = $2 AND version = $3",
        user_id,
        image_sha256,
        version,
        result,  # shared/db.py's JSONB codec encodes it
    )


async def unclaim(conn, user_id: str, image_sha256: str, version: str) -> None:
    """Give a claim back without a result (the model did not answer, no quota, ...): the next
    request for the key may claim it at once."""
    await conn.execute(
        "DELETE FROM image_recognitions"
        " WHERE user_id = $1::uuid AND image_sha256 = $2 AND version = $3 AND result IS NULL",
        user_id,
        image_sha256,
        version,
    )


async def forget_image(conn, user_id: str, image_sha256: str, blob_name: str) -> int:
    """Erase the user's results for a picture whose image row was just deleted, unless another of
    the user's images holds the same bytes (its results are still the user's)."""
    deleted = await conn.fetch(
        """
        DELETE FROM image_recognitions
         WHERE user_id = $1::uuid AND image_sha256 = $2
           AND NOT EXISTS (SELECT 1 FROM media_metadata WHERE user_id = $1::uuid AND blob_name = $3)
        RETURNING 1
        """,
        user_id,
        image_sha256,
        blob_name,
    )
    return len(deleted)


async def delete_user(conn, user_id: str) -> int:
    deleted = await conn.fetch("DELETE FROM image_recognitions WHERE user_id = $1::uuid RETURNING 1", user_id)
    return len(deleted)
