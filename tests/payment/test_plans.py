"""The plan-change policy (payment_service.service.plans), pure: every current tier x paid-for tier x
target, and the one parse of the paid-for tier a scheduled downgrade records on the subscription."""

from datetime import UTC, datetime, timedelta

import pytest

from payment_service.service.plans import PAID_TIER_KEY, PAID_UNTIL_KEY, CurrentPlan, paid_tier_of, plan_change
from shared.tiers import parse_tier

PERIOD_END = 1_900_000_000
PRICE = {1: "price_pro", 2: "price_max"}

# (tier of the current price, higher tier still paid for, target) -> what happens.
# "withdrawn": back to the tier paid for, no charge; "upgrade": prorated now; "downgrade": at period end.
EXPECTED = {
    (0, 0, 1): "upgrade",
    (0, 0, 2): "upgrade",
    (0, 1, 1): "withdrawn",
    (0, 1, 2): "upgrade",
    (0, 2, 1): "upgrade",
    (0, 2, 2): "withdrawn",
    (1, 0, 1): None,
    (1, 0, 2): "upgrade",
    (1, 1, 1): None,
    (1, 1, 2): "upgrade",  # a paid tier not above the price's is stale metadata: ignored
    (1, 2, 1): None,  # already on pro with a downgrade from max scheduled: nothing to do
    (1, 2, 2): "withdrawn",
    (2, 0, 1): "downgrade",
    (2, 0, 2): None,
    (2, 1, 1): "downgrade",  # stale metadata below the price's tier: a real downgrade, not a free switch
    (2, 1, 2): None,
    (2, 2, 1): "downgrade",
    (2, 2, 2): None,
}


@pytest.mark.parametrize(("current", "paid", "target"), sorted(EXPECTED))
def test_plan_change_for_every_combination(current, paid, target):
    plan = CurrentPlan(item_id="si_1", tier=current, paid_tier=paid, period_end=PERIOD_END)
    change = plan_change(plan, target, PRICE[target])
    expected = EXPECTED[(current, paid, target)]
    if expected is None:
        assert change is None
        return
    assert change is not None
    assert change.params["items"] == [{"id": "si_1", "price": PRICE[target]}]
    target_name = {1: "pro", 2: "max"}[target]
    if expected == "upgrade":
        assert change.reason == "upgrade"
        assert change.params["proration_behavior"] == "always_invoice"
        assert change.params["payment_behavior"] == "pending_if_incomplete"
        assert "metadata" not in change.params  # Stripe refuses metadata with pending_if_incomplete
    elif expected == "withdrawn":
        assert change.reason == "downgrade_withdrawn"
        assert change.params["proration_behavior"] == "none"
        assert change.params["metadata"] == {"tier": target_name, PAID_TIER_KEY: "", PAID_UNTIL_KEY: ""}
    else:
        assert change.reason == "downgrade_scheduled"
        assert change.params["proration_behavior"] == "none"
        assert "payment_behavior" not in change.params
        # The higher of the price's tier and a still-paid tier stays until the period ends.
        kept = str(max(current, paid))
        assert change.params["metadata"] == {"tier": target_name, PAID_TIER_KEY: kept, PAID_UNTIL_KEY: str(PERIOD_END)}


def test_a_scheduled_downgrade_round_trips_through_the_metadata_parse():
    """What a downgrade writes is what paid_tier_of reads back (until the period ends)."""
    change = plan_change(CurrentPlan(item_id="si_1", tier=2, period_end=PERIOD_END), 1, PRICE[1])
    before = datetime.fromtimestamp(PERIOD_END - 1, UTC)
    after = datetime.fromtimestamp(PERIOD_END, UTC)
    assert paid_tier_of(change.params["metadata"], before) == (2, after)
    assert paid_tier_of(change.params["metadata"], after) == (0, None)
    withdrawn = plan_change(CurrentPlan(item_id="si_1", tier=1, paid_tier=2, period_end=PERIOD_END), 2, PRICE[2])
    assert paid_tier_of(withdrawn.params["metadata"], before) == (0, None)


NOW = datetime(2026, 1, 1, tzinfo=UTC)
LATER = int((NOW + timedelta(days=3)).timestamp())
EARLIER = int((NOW - timedelta(seconds=1)).timestamp())


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        (None, (0, None)),
        ({}, (0, None)),
        ({PAID_TIER_KEY: "2", PAID_UNTIL_KEY: str(LATER)}, (2, datetime.fromtimestamp(LATER, UTC))),
        ({PAID_TIER_KEY: 1, PAID_UNTIL_KEY: LATER}, (1, datetime.fromtimestamp(LATER, UTC))),
        ({PAID_TIER_KEY: "2", PAID_UNTIL_KEY: str(EARLIER)}, (0, None)),  # ran out
        ({PAID_TIER_KEY: "2"}, (0, None)),  # no end: nothing is paid for
        ({PAID_TIER_KEY: "", PAID_UNTIL_KEY: ""}, (0, None)),  # cleared by a withdrawal
        ({PAID_TIER_KEY: "max", PAID_UNTIL_KEY: str(LATER)}, (0, None)),  # malformed
        ({PAID_TIER_KEY: "2", PAID_UNTIL_KEY: "soon"}, (0, None)),
        ({PAID_TIER_KEY: "7", PAID_UNTIL_KEY: str(LATER)}, (0, None)),  # no such tier
        ({PAID_TIER_KEY: "2", PAID_UNTIL_KEY: "None"}, (0, None)),
    ],
)
def test_paid_tier_of(metadata, expected):
    assert paid_tier_of(metadata, NOW) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("free", 0),
        ("pro", 1),
        (" Max ", 2),
        ("PRO", 1),
        (0, 0),
        (2, 2),
        ("1", 1),
        (" 2 ", 2),
        ("gold", None),
        (3, None),
        (-1, None),
        ("", None),
        (None, None),
        (True, None),
        ([1], None),
    ],
)
def test_parse_tier(value, expected):
    assert parse_tier(value) == expected
