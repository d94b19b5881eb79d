"""The rules on their own: local days across time zones and DST changes, streak steps and
milestones, the level curve, engagement tiers."""

from datetime import UTC, date, datetime, timedelta

import pytest

from analytics_service import rules


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_the_same_instants_are_different_days_in_different_time_zones():
    late_utc = utc(2026, 6, 1, 23, 30)
    assert rules.local_day(late_utc, "UTC") == date(2026, 6, 1)
    assert rules.local_day(late_utc, "Asia/Tokyo") == date(2026, 6, 2)
    assert rules.local_day(late_utc, "America/Los_Angeles") == date(2026, 6, 1)
    assert rules.local_day(utc(2026, 6, 2, 3, 0), "America/Los_Angeles") == date(2026, 6, 1)


def test_a_streak_over_the_spring_dst_change_counts_local_days():
    # New York moves from EST (-5) to EDT (-4) at 02:00 on 8 March 2026: that day has 23 hours.
    tz = "America/New_York"
    s = rules.Streak()
    times = [utc(2026, 3, 8, 4, 30), utc(2026, 3, 9, 3, 30), utc(2026, 3, 9, 4, 30)]  # 7th 23:30, 8th 23:30, 9th 00:30
    assert [rules.local_day(t, tz) for t in times] == [date(2026, 3, 7), date(2026, 3, 8), date(2026, 3, 9)]
    reached = [m for t in times for m in s.step(rules.local_day(t, tz))]
    assert (s.current, s.longest, reached) == (3, 3, [3])
    # The same instants in UTC are two days (8th, 9th, 9th): no third day.
    u = rules.Streak()
    for t in times:
        u.step(rules.local_day(t, "UTC"))
    assert u.current == 2


def test_the_autumn_dst_day_of_25_hours_is_one_day():
    tz = "America/New_York"  # back from EDT to EST at 02:00 on 1 November 2026
    first, last = utc(2026, 11, 1, 4, 5), utc(2026, 11, 2, 4, 55)  # 00:05 EDT and 23:55 EST, both 1 November
    assert rules.local_day(first, tz) == rules.local_day(last, tz) == date(2026, 11, 1)
    assert last - first > timedelta(hours=24)


def test_streak_steps_reset_after_a_missed_day_and_ignore_the_past():
    s = rules.Streak()
    d = date(2026, 1, 1)
    assert s.step(d) == [] and s.current == 1 and s.started_on == d
    assert s.step(d) == []  # same day
    assert s.step(d + timedelta(days=1)) == [] and s.current == 2
    assert s.step(d + timedelta(days=2)) == [3]
    assert s.step(d) == [] and s.current == 3  # a late event does not move it back
    assert s.step(d + timedelta(days=4)) == [] and (s.current, s.longest) == (1, 3)  # day 3 missed: reset
    assert s.started_on == d + timedelta(days=4)
    assert s.current_on(d + timedelta(days=5)) == 1 and s.current_on(d + timedelta(days=6)) == 0
    assert s.next_milestone(d + timedelta(days=5)) == 3


def test_milestones_come_once_each_along_a_long_streak():
    s = rules.Streak()
    d = date(2026, 1, 1)
    reached = [m for i in range(120) for m in s.step(d + timedelta(days=i))]
    assert reached == [3, 7, 14, 30, 100]
    assert rules.streak_grant_key(s.started_on, 7) == "streak:2026-01-01:7"


@pytest.mark.parametrize(
    "xp,level",
    [(0, 1), (99, 1), (100, 2), (299, 2), (300, 3), (999, 4), (1000, 5), (4500, 10), (19_000, 20), (18_999, 19)],
)
def test_level_curve(xp, level):
    assert rules.level_for_xp(xp) == level


def test_level_curve_matches_its_definition_everywhere():
    for xp in range(0, 60_000, 7):
        level = rules.level_for_xp(xp)
        assert rules.xp_for_level(level) <= xp < rules.xp_for_level(level + 1)
    assert rules.level_progress(200) == 0.5


def test_timezone_names_are_checked_against_the_database():
    assert rules.valid_timezone("Europe/Paris") and rules.valid_timezone("UTC")
    for bad in ("Mars/Olympus", "../../etc/passwd", "", "europe/paris "):
        assert not rules.valid_timezone(bad)


def test_engagement_tiers():
    now = utc(2026, 6, 30)
    old = now - timedelta(days=90)
    assert (
        rules.engagement_tier(first_seen=now - timedelta(days=2), last_active=now, active_days_30=2, now=now) == "new"
    )
    assert (
        rules.engagement_tier(first_seen=old, last_active=now - timedelta(days=15), active_days_30=0, now=now)
        == "at_risk"
    )
    assert rules.engagement_tier(first_seen=old, last_active=now, active_days_30=25, now=now) == "power"
    assert rules.engagement_tier(first_seen=old, last_active=now, active_days_30=10, now=now) == "regular"
    assert rules.engagement_tier(first_seen=old, last_active=now, active_days_30=3, now=now) == "casual"


def test_flip_rewards_are_drawn_by_weight_and_never_with_weight_zero():
    import random
    from collections import Counter

    table = [
        {"code": "a", "weight": 60},
        {"code": "b", "weight": 30},
        {"code": "c", "weight": 10},
        {"code": "never", "weight": 0},
    ]
    rng = random.Random(42)
    drawn = Counter(rules.draw_reward(table, rng)["code"] for _ in range(20_000))
    assert drawn["never"] == 0
    for code, weight in (("a", 60), ("b", 30), ("c", 10)):
        assert abs(drawn[code] / 20_000 - weight / 100) < 0.015, drawn
    with pytest.raises(ValueError):
        rules.draw_reward([{"code": "x", "weight": 0}], rng)
