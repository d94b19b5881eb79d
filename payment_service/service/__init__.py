"""Payment's domain layer.

- `ledger`: provider state applied to subscription rows, tiers settled, events announced;
- `stripe_events`, `revenuecat`: each provider's webhooks and API answers, on the ledger;
- `plans`: the plan-change policy, pure (upgrade now, downgrade at period end, withdraw);
- `account`: what a user does with their card subscription (checkout, portal, change, cancel);
- `webhooks`: a provider's event recorded once and applied, the caches updated after commit.

`Billing` (app.state.billing) is the ledger with both providers' handling. After a commit that
changed tiers, the caller runs `webhook_effects.after_commit(state, applied)`: the Redis tier
cache every service reads, and the quota cache.
"""

from __future__ import annotations

from payment_service.service.ledger import ENDED_STATUSES, ENTITLED_STATUSES, Applied
from payment_service.service.plans import CurrentPlan, PlanChange, paid_tier_of, plan_change
from payment_service.service.revenuecat import RevenueCatBilling
from payment_service.service.stripe_events import SUBSCRIPTION_EVENTS, StripeBilling


class Billing(StripeBilling, RevenueCatBilling):
    """Stripe's and RevenueCat's handling over one subscription ledger (see the modules)."""


__all__ = [
    "ENDED_STATUSES",
    "ENTITLED_STATUSES",
    "SUBSCRIPTION_EVENTS",
    "Applied",
    "Billing",
    "CurrentPlan",
    "PlanChange",
    "paid_tier_of",
    "plan_change",
]
