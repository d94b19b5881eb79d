"""What a subscription event becomes (pure functions of community_service/notifications/kinds.py);
the delivery end to end is tests/community/test_notifications.py and tests/e2e."""

from __future__ import annotations

import uuid

from community_service.notifications import consumer, kinds
from shared.events import make_event


def test_a_first_subscription_is_welcomed_like_an_upgrade():
    """Payment announces a first subscription from Free as `subscription.created`, not
    `subscription.upgraded`: it must give the same confirmation (email and push by default)."""
    user = str(uuid.uuid4())
    data = {"tier": 1, "tier_name": "pro", "previous_tier": 0, "status": "active"}
    assert "subscription.created" in consumer.BINDINGS
    [created] = kinds.drafts_for(make_event("subscription.created", user, data))
    [upgraded] = kinds.drafts_for(make_event("subscription.upgraded", user, data))
    assert (created.kind, created.title, created.body) == (upgraded.kind, upgraded.title, upgraded.body)
    assert created.title == "Welcome to Pro" and created.user_id == user
    assert created.data == {"change": "created", "tier": 1, "previous_tier": 0}
    assert kinds.DEFAULTS["email"][created.kind] and kinds.DEFAULTS["push"][created.kind]
