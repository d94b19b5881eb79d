"""What a turn spends, decided once for every flow: a new conversation spends `regular`, a
premium model `premium`, an image `image_recognition`; and the quota figure a reply shows."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from shared.llm import ModelSpec
from shared.quota import QuotaClient, Reservation

log = logging.getLogger("chat_service.quota_plan")


@dataclass(frozen=True)
class QuotaPlan:
    needs: list[str]  # reserved, in this order, before any expensive work
    main: str | None  # the quota the reply reports (None: nothing reserved, "regular" is shown)


def plan(spec: ModelSpec, *, new_conversation: bool, vision: bool = False) -> QuotaPlan:
    premium = spec.quota_type == "premium"
    needs = (["regular"] if new_conversation else []) + (["premium"] if premium else [])
    needs += ["image_recognition"] if vision else []
    if premium:
        main = "premium"
    elif vision and not new_conversation:
        main = "image_recognition"
    else:
        main = "regular" if new_conversation else None
    return QuotaPlan(needs, main)


def early_snapshot(
    quota: QuotaClient, user_id: str, quota_plan: QuotaPlan, cached: bytes | None = None
) -> asyncio.Future | None:
    """A turn that reserves nothing for its main quota type changes nothing the snapshot shows: it
    comes from the cache value read with the tier, or (on a miss) from a read that runs while the
    model answers instead of after it."""
    if quota_plan.main in quota_plan.needs:
        return None

    async def read() -> dict | Exception:
        try:
            return await quota.remaining(user_id, cached)
        except Exception as exc:  # handed to view() (never an unretrieved task error)
            return exc

    return asyncio.ensure_future(read())


async def view(
    quota: QuotaClient,
    user_id: str,
    reservations: list[Reservation],
    main: str | None,
    snapshot: asyncio.Future | None = None,
) -> dict[str, Any]:
    """`{type, remaining, reset_at}` of the main quota after the turn (-1 remaining: unknown or unlimited)."""
    for r in reservations:
        if r.quota_type == main:
            reset_at = r.reset_at.isoformat() if r.reset_at else None
            return {"type": r.quota_type, "remaining": r.remaining, "reset_at": reset_at}
    qt = main or "regular"
    try:
        snap = await (snapshot if snapshot is not None else quota.remaining(user_id))
        if isinstance(snap, Exception):
            raise snap
        entry = snap.get(qt) or {}
        return {"type": qt, "remaining": int(entry.get("remaining", -1)), "reset_at": entry.get("reset_at")}
    except Exception as exc:  # the reply is saved; the count is informative only
        log.warning("quota snapshot unavailable", extra={"error": repr(exc)})
        return {"type": qt, "remaining": -1, "reset_at": None}


def give_back(reservations: list[Reservation]) -> None:
    """Inside `quota.reserved(...)`: nothing chargeable was produced, release it all on exit."""
    for r in reservations:
        r.actual = 0
