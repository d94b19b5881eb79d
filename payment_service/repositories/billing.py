"""All SQL of subscriptions, customers, transactions and processed webhook events (core database)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg

_SUB_COLUMNS = (
    "user_id",
    "stripe_customer_id",
    "stripe_subscription_id",
    "stripe_item_id",
    "price_id",
    "tier",
    "status",
    "current_period_end",
    "cancel_at_period_end",
    "grace_until",
    "trial_end",
    "pending_tier",
    "pending_tier_at",
    "source_updated_at",
)


def as_uuid(value: Any) -> uuid.UUID | None:
    if value is None:
        return None
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except (ValueError, TypeError, AttributeError):
        return None


# ------------------------------------------------------------------------------ webhook events


async def record_webhook_event(
    conn: asyncpg.Connection,
    provider: str,
    event_id: str,
    event_type: str,
    created: datetime | None,
    outcome: str | None = None,
) -> bool:
    """True the first time; False when this event was already applied (same transaction as the effect)."""
    return bool(
        await conn.fetchval(
            "INSERT INTO webhook_events (provider, event_id, event_type, event_created, outcome)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING true",
            provider,
            event_id,
            event_type,
            created,
            outcome,
        )
    )


async def record_subscription_event(
    conn: asyncpg.Connection,
    provider: str,
    event_id: str,
    event_type: str,
    created: datetime | None,
    outcome: str | None,
    source: str,
    external_id: str,
) -> tuple[bool, asyncpg.Record | None]:
    """record_webhook_event and, the first time, lock_and_get_subscription: one round trip.
    Returns (recorded, the subscription row or None)."""
    row = await conn.fetchrow(
        "SELECT recorded, sub FROM payment_record_subscription_event($1, $2, $3, $4, $5, $6, $7)",
        provider,
        event_id,
        event_type,
        created,
        outcome,
        source,
        external_id,
    )
    return row["recorded"], row["sub"]


async def set_webhook_outcome(conn: asyncpg.Connection, provider: str, event_id: str, outcome: str) -> None:
    await conn.execute(
        "UPDATE webhook_events SET outcome = $3 WHERE provider = $1 AND event_id = $2",
        provider,
        event_id,
        outcome[:200],
    )


# ----------------------------------------------------------------------------------- customers


async def customer_for_user(conn, user_id: str) -> str | None:
    return await conn.fetchval("SELECT customer_id FROM stripe_customers WHERE user_id = $1", as_uuid(user_id))


async def claim_customer_email_update(conn, user_id: str, as_of) -> str | None:
    """The user's Stripe customer, if an email change as of `as_of` is newer than the last applied
    one (recorded now; the row stays locked until the caller's transaction ends); else None."""
    return await conn.fetchval(
        "UPDATE stripe_customers SET email_as_of = $2"
        " WHERE user_id = $1 AND (email_as_of IS NULL OR email_as_of < $2) RETURNING customer_id",
        as_uuid(user_id),
        as_of,
    )


async def user_for_customer(conn, customer_id: str) -> str | None:
    value = await conn.fetchval("SELECT user_id FROM stripe_customers WHERE customer_id = $1", customer_id)
    return str(value) if value else None


async def link_customer(conn, user_id: str, customer_id: str) -> str:
    """Record user -> customer once; returns the customer id that is recorded (the first one wins)."""
    await conn.execute(
        "INSERT INTO stripe_customers (user_id, customer_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        as_uuid(user_id),
        customer_id,
    )
    return await conn.fetchval("SELECT customer_id FROM stripe_customers WHERE user_id = $1", as_uuid(user_id))


# ------------------------------------------------------------------------------- subscriptions


async def lock_and_get_subscription(conn, source: str, external_id: str) -> asyncpg.Record | None:
    """Serialise every change to one subscription (also before its row exists; the lock is held
    until the transaction ends), then read it: one round trip."""
    return await conn.fetchrow("SELECT * FROM payment_lock_subscription($1, $2)", source, external_id)


async def get_subscription(conn, source: str, external_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT * FROM subscriptions WHERE source = $1 AND external_id = $2", source, external_id
    )


async def save_subscription_and_settle_tier(
    conn, source: str, external_id: str, fields: dict[str, Any]
) -> tuple[asyncpg.Record, int, int]:
    """Lock the user's quota row, save the subscription, settle the effective tier (quotas reset when
    it changed), in one round trip. Returns (row, tier the quotas were set for before, tier now)."""
    fields = {
        **fields,
        "cancel_at_period_end": bool(fields.get("cancel_at_period_end")),
        "tier": fields.get("tier") or 0,
    }
    values = {c: fields.get(c) for c in _SUB_COLUMNS}
    values["user_id"] = as_uuid(values["user_id"])
    result = await conn.fetchrow(
        "SELECT sub, tier_before, tier_after FROM payment_save_subscription($1, $2, $3::jsonb)",
        source,
        external_id,
        values,
    )
    return result["sub"], result["tier_before"], result["tier_after"]


async def user_subscriptions(conn, user_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT * FROM subscriptions WHERE user_id = $1 ORDER BY tier DESC, source_updated_at DESC", as_uuid(user_id)
    )


async def live_stripe_subscription(conn, user_id: str) -> asyncpg.Record | None:
    """The user's Stripe subscription that can still be changed (not ended), newest first."""
    return await conn.fetchrow(
        "SELECT * FROM subscriptions WHERE user_id = $1 AND source = 'stripe'"
        " AND status IN ('active', 'trialing', 'past_due', 'paused', 'incomplete')"
        " ORDER BY tier DESC, source_updated_at DESC LIMIT 1",
        as_uuid(user_id),
    )


async def had_stripe_subscription(conn, user_id: str) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM subscriptions WHERE user_id = $1 AND source = 'stripe')", as_uuid(user_id)
        )
    )


async def effective_tier(conn, user_id: str) -> int:
    return int(await conn.fetchval("SELECT effective_tier($1::uuid)", as_uuid(user_id)))


async def settle_tier(conn, user_id: str, before: int) -> int:
    """The user's effective tier now; when it differs from `before`, their quotas are reset to it
    (paid: for the period of the subscription granting it; free: daily). One round trip."""
    # The reset count is selected (not just joined) so PostgreSQL cannot prune the reset away.
    row = await conn.fetchrow(
        "WITH t AS (SELECT effective_tier($1::uuid) AS tier),"
        " r AS (SELECT quota_reset($1::uuid, t.tier,"
        "   (SELECT max(current_period_end) FROM subscriptions WHERE user_id = $1::uuid AND tier = t.tier"
        "     AND status IN ('active', 'trialing', 'past_due')),"
        "   CASE WHEN t.tier > $2 THEN 'upgrade' ELSE 'downgrade' END) AS u FROM t WHERE t.tier <> $2)"
        " SELECT t.tier, (SELECT count(*) FROM r) AS reset FROM t",
        as_uuid(user_id),
        before,
    )
    return int(row["tier"])


async def entitled_period_end(conn, user_id: str, tier: int) -> datetime | None:
    return await conn.fetchval(
        "SELECT max(current_period_end) FROM subscriptions WHERE user_id = $1 AND tier = $2"
        " AND status IN ('active', 'trialing', 'past_due')",
        as_uuid(user_id),
        tier,
    )


async def users_needing_reconcile(conn, limit: int = 500) -> list[str]:
    """Users whose quotas were set for a tier they are no longer (or not yet) entitled to because time
    passed: a grace period or a RevenueCat entitlement ran out, a scheduled downgrade came due."""
    rows = await conn.fetch(
        "SELECT DISTINCT s.user_id FROM subscriptions s JOIN user_quotas q ON q.user_id = s.user_id"
        " WHERE (s.pending_tier IS NOT NULL AND s.pending_tier_at <= now())"
        "    OR (((s.status = 'past_due' AND s.grace_until <= now())"
        "         OR (s.source = 'revenuecat' AND s.current_period_end <= now()))"
        "        AND q.tier <> effective_tier(s.user_id)) LIMIT $1",
        limit,
    )
    return [str(r["user_id"]) for r in rows]


async def apply_due_pending_tiers(conn, user_id: str) -> None:
    await conn.execute(
        "UPDATE subscriptions SET tier = pending_tier, pending_tier = NULL, pending_tier_at = NULL, updated_at = now()"
        " WHERE user_id = $1 AND pending_tier IS NOT NULL AND pending_tier_at <= now()",
        as_uuid(user_id),
    )


# -------------------------------------------------------------------------------------- quotas


async def lock_quota_tier(conn, user_id: str) -> int:
    """Lock the user's quota row (created lazily) and return the tier its allowances were set for."""
    return int(await conn.fetchval("SELECT (quota_lock_row($1::uuid)).tier", as_uuid(user_id)))


async def reset_quotas(conn, user_id: str, tier: int, reset_at: datetime | None, reason: str) -> None:
    await conn.execute("SELECT quota_reset($1::uuid, $2, $3, $4)", as_uuid(user_id), tier, reset_at, reason)


async def grant_reward(
    conn, reward_id: uuid.UUID, user_id: uuid.UUID, quota_type: str, amount: int, reason: str
) -> bool:
    """A reward's bonus credits, once per reward id: True when added now."""
    return await conn.fetchval(
        "SELECT quota_grant_reward($1::uuid, $2::uuid, $3, $4, $5)", reward_id, user_id, quota_type, amount, reason
    )


async def add_bonus(conn, user_id: str, amount: int, reason: str) -> int:
    return await conn.fetchval("SELECT quota_add_bonus($1::uuid, $2, $3)", as_uuid(user_id), amount, reason)


async def ensure_quota_row(conn, user_id: str) -> None:
    await conn.execute("SELECT quota_lock_row($1::uuid)", as_uuid(user_id))


async def quota_snapshot(conn, user_id: str) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT * FROM quota_snapshot($1::uuid)", as_uuid(user_id))


async def sweep_expired_reservations(conn) -> list[str]:
    return [str(r["u"]) for r in await conn.fetch("SELECT DISTINCT u FROM quota_expire_reservations() AS u")]


async def sweep_daily_resets(conn) -> list[str]:
    return [str(r["u"]) for r in await conn.fetch("SELECT u FROM quota_reset() AS u")]


async def delete_old_reservations(conn, days: int) -> int:
    status = await conn.execute(
        "DELETE FROM quota_reservations WHERE state <> 'held' AND finished_at < now() - make_interval(days => $1)", days
    )
    return int(status.split()[-1])


# -------------------------------------------------------------------------------- transactions


async def insert_transaction(
    conn,
    *,
    user_id: str | None,
    source: str,
    kind: str,
    status: str,
    amount_cents: int,
    currency: str,
    external_id: str,
    stripe_customer_id: str | None = None,
    subscription_ref: str | None = None,
    description: str | None = None,
    occurred_at: datetime,
) -> bool:
    return bool(
        await conn.fetchval(
            "INSERT INTO payment_transactions (user_id, source, kind, status, amount_cents, currency, external_id,"
            " stripe_customer_id, subscription_ref, description, occurred_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (source, kind, external_id) DO NOTHING"
            " RETURNING true",
            as_uuid(user_id),
            source,
            kind,
            status,
            amount_cents,
            (currency or "usd").lower(),
            external_id,
            stripe_customer_id,
            subscription_ref,
            description,
            occurred_at,
        )
    )


async def refunded_so_far(conn, charge_id: str) -> int:
    return int(
        await conn.fetchval(
            "SELECT COALESCE(-sum(amount_cents), 0) FROM payment_transactions"
            " WHERE source = 'stripe' AND kind = 'refund' AND subscription_ref = $1",
            charge_id,
        )
    )


async def transactions_for_user(conn, user_id: str, limit: int = 50) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT * FROM payment_transactions WHERE user_id = $1 ORDER BY occurred_at DESC LIMIT $2",
        as_uuid(user_id),
        limit,
    )


# ------------------------------------------------------------------------------------- erasure


async def erase_user(conn, user_id: str) -> dict[str, int]:
    """Erase a user's payment data. Kept for accounting: payment_transactions (amounts, currency,
    dates, provider ids) with the user id removed."""
    uid = as_uuid(user_id)
    counts = {}
    for table, sql in (
        ("subscriptions", "DELETE FROM subscriptions WHERE user_id = $1"),
        ("user_quotas", "DELETE FROM user_quotas WHERE user_id = $1"),
        ("quota_reservations", "DELETE FROM quota_reservations WHERE user_id = $1"),
        ("reward_grants", "DELETE FROM reward_grants WHERE user_id = $1"),
        ("stripe_customers", "DELETE FROM stripe_customers WHERE user_id = $1"),
        (
            "payment_transactions",
            "UPDATE payment_transactions SET user_id = NULL, description = NULL WHERE user_id = $1",
        ),
    ):
        counts[table] = int((await conn.execute(sql, uid)).split()[-1])
    return counts
