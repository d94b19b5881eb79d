"""The plan-change policy, pure: what moving a Stripe subscription to another tier does, and the
paid-for tier a scheduled downgrade leaves on the subscription (its metadata) until period end.

Upgrades take effect at once and are charged the prorated difference; downgrades take effect at
the end of the period already paid for (the paid-for tier stays until then); going back to the
paid-for tier before then withdraws the scheduled downgrade, free of charge.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from payment_service.service.ledger import ts
from shared.tiers import TIER_MAX, tier_name

# Written on the Stripe subscription by a scheduled downgrade (Stripe keeps metadata strings).
PAID_TIER_KEY = "scenextras_paid_tier"
PAID_UNTIL_KEY = "scenextras_paid_tier_until"


def paid_tier_of(metadata: dict[str, Any] | None, at: datetime) -> tuple[int, datetime | None]:
    """The higher tier still paid for after a scheduled downgrade: (tier, until) while `until` is
    later than `at`; (0, None) when there is none, it has run out, or the metadata is malformed."""
    metadata = metadata or {}
    try:
        tier = int(metadata.get(PAID_TIER_KEY) or 0)
        until = ts(metadata.get(PAID_UNTIL_KEY))
    except (TypeError, ValueError, OverflowError, OSError):
        return 0, None
    if not 0 < tier <= TIER_MAX or until is None or until <= at:
        return 0, None
    return tier, until


@dataclass(frozen=True)
class CurrentPlan:
    """A Stripe subscription as the policy sees it."""

    item_id: str
    tier: int  # the tier of the price it is on now
    paid_tier: int = 0  # a higher tier still paid for (a downgrade is scheduled); 0: none
    period_end: int | None = None  # unix seconds


@dataclass(frozen=True)
class PlanChange:
    reason: str  # "upgrade", "downgrade_scheduled" or "downgrade_withdrawn"
    params: dict[str, Any]  # the Stripe subscription update


def plan_change(current: CurrentPlan, target: int, price: str) -> PlanChange | None:
    """What moving `current` to tier `target` (whose Stripe price is `price`) does; None when it is
    already on that price (a downgrade to it may be scheduled): nothing to do."""
    if current.tier == target:
        return None
    items = [{"id": current.item_id, "price": price}]
    # Only a tier above the current price's counts as paid for (metadata left from an older change does not).
    paid_tier = current.paid_tier if current.paid_tier > current.tier else 0
    if paid_tier and target == paid_tier:
        # Back to the tier already paid for this period: undo the scheduled downgrade, no charge.
        cleared = {"tier": tier_name(target), PAID_TIER_KEY: "", PAID_UNTIL_KEY: ""}
        return PlanChange("downgrade_withdrawn", {"items": items, "proration_behavior": "none", "metadata": cleared})
    if target > current.tier:
        # Swap the price and invoice the prorated difference now; with pending_if_incomplete the
        # swap only happens once that invoice is paid. (Stripe accepts no metadata with
        # pending_if_incomplete; none is needed: a scheduled downgrade cannot be pending here,
        # going back to the paid-for tier took the branch above.)
        return PlanChange(
            "upgrade",
            {"items": items, "proration_behavior": "always_invoice", "payment_behavior": "pending_if_incomplete"},
        )
    # The new price bills from the next period (no proration, no credit); the paid-for tier stays
    # until then, recorded on the subscription itself.
    metadata = {
        "tier": tier_name(target),
        PAID_TIER_KEY: str(max(current.tier, paid_tier)),
        PAID_UNTIL_KEY: str(current.period_end or ""),
    }
    return PlanChange("downgrade_scheduled", {"items": items, "proration_behavior": "none", "metadata": metadata})
