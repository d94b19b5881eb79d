"""What happens after a tier-changing transaction commits: every service sees the new tier on the
user's very next request (Redis tier cache), and the quota cache is dropped."""
from __future__ import annotations

import asyncio
from typing import Iterable

from shared.tiers import set_cached_tier


async def after_commit(app, applied: Iterable) -> None:
    state = app.state
    users = {}
    for a in applied:
        if a is not None:
            users[a.user_id] = a.tier
    if users:
        await asyncio.gather(
            *(set_cached_tier(state.redis, state.keys, user_id, tier) for user_id, tier in users.items()),
            state.quota.drop_cache(*users),
        )
