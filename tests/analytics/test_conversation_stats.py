"""/conversation-stats: the caller's conversations per period and nobody else's, the most-talked-to
characters per period, bad parameters refused."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from analytics_service import rules
from tests.analytics.conftest import event

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_my_conversation_stats_per_period_and_only_mine(analytics, bus, new_user):
    alice, bob = new_user(), new_user()
    now = datetime.now(UTC)
    week_start = rules.period_start("week", now)
    month_start = rules.period_start("month", now)
    old = now - timedelta(days=70)  # before this week and this month
    frodo, sam, ent = (f"{name}-{uuid.uuid4().hex[:6]}" for name in ("Frodo", "Sam", "Treebeard"))
    recent, other, ancient, bobs = (str(uuid.uuid4()) for _ in range(4))

    def msg(user, conv, sender, at, **extra):
        return event("message.sent", user.id, {"conversation_id": conv, "sender": sender, **extra}, at=at)

    await bus.send(
        event("conversation.created", alice.id, {"conversation_id": recent, "character": frodo}, at=now),
        *[msg(alice, recent, frodo, now) for _ in range(4)],
        msg(alice, recent, frodo, now, regenerated=True),  # replaces a reply: not counted
        event("conversation.created", alice.id, {"conversation_id": other, "character": sam}, at=now),
        *[msg(alice, other, sam, now) for _ in range(2)],
        event("conversation.created", alice.id, {"conversation_id": ancient, "character": ent}, at=old),
        *[msg(alice, ancient, ent, old) for _ in range(3)],
        *[msg(bob, bobs, ent, now) for _ in range(9)],
    )
    await bus.settled()

    everything = await analytics.get("/conversation-stats/me", headers=alice.headers)
    assert everything.status_code == 200, everything.text
    a = everything.json()
    assert (a["period"], a["period_start"], a["messages"], a["conversations"], a["characters"]) == (
        "all",
        None,
        9,
        3,
        3,
    )
    assert a["average_messages_per_conversation"] == 3.0
    assert [c["conversation_id"] for c in a["recent_conversations"]][-1] == ancient  # most recent first
    by_id = {c["conversation_id"]: c for c in a["recent_conversations"]}
    assert set(by_id) == {recent, other, ancient}  # never bob's
    assert (by_id[recent]["character"], by_id[recent]["messages"]) == (frodo, 4)
    assert a["top_characters"] == [
        {"character": frodo, "messages": 4},
        {"character": ent, "messages": 3},
        {"character": sam, "messages": 2},
    ]

    week = (await analytics.get("/conversation-stats/me", params={"period": "week"}, headers=alice.headers)).json()
    assert (week["period_start"], week["messages"], week["conversations"], week["characters"]) == (
        week_start.isoformat(),
        6,
        2,
        2,
    )
    assert {c["conversation_id"] for c in week["recent_conversations"]} == {recent, other}
    month = (await analytics.get("/conversation-stats/me", params={"period": "month"}, headers=alice.headers)).json()
    assert (month["period_start"], month["messages"], month["conversations"]) == (month_start.isoformat(), 6, 2)
    limited = await analytics.get("/conversation-stats/me", params={"limit": 1}, headers=alice.headers)
    assert len(limited.json()["recent_conversations"]) == 1 and len(limited.json()["top_characters"]) == 1

    # Bob sees his own conversation only; the legacy path answers the same.
    theirs = (await analytics.get("/conversation-stats/me", headers=bob.headers)).json()
    assert [c["conversation_id"] for c in theirs["recent_conversations"]] == [bobs]
    assert theirs["messages"] == 9 and theirs["top_characters"] == [{"character": ent, "messages": 9}]
    legacy = await analytics.get("/api/conversation-stats/me", headers=bob.headers)
    assert legacy.status_code == 200 and legacy.json() == theirs

    # A user with nothing yet: zeros, empty lists.
    nobody = (await analytics.get("/conversation-stats/me", headers=new_user().headers)).json()
    assert (nobody["messages"], nobody["conversations"], nobody["recent_conversations"]) == (0, 0, [])

    # The most-talked-to characters: totals over everyone, per period.
    async def characters(period):
        r = await analytics.get(
            "/conversation-stats/characters", params={"period": period, "limit": 100}, headers=alice.headers
        )
        assert r.status_code == 200, r.text
        return r.json()

    all_time = await characters("all")
    ranked = {c["character"]: c for c in all_time["characters"]}
    assert (ranked[ent]["messages"], ranked[ent]["conversations"], ranked[ent]["users"]) == (12, 1, 2)
    assert (ranked[frodo]["messages"], ranked[frodo]["conversations"], ranked[frodo]["users"]) == (4, 1, 1)
    messages = [c["messages"] for c in all_time["characters"]]
    assert messages == sorted(messages, reverse=True)
    assert all(
        c["rank"] == 1 + sum(1 for m in messages if m > c["messages"]) for c in all_time["characters"]
    )  # ties share a rank
    this_week = await characters("week")
    ranked = {c["character"]: c for c in this_week["characters"]}
    assert this_week["period_start"] == week_start.isoformat()
    assert (ranked[ent]["messages"], ranked[ent]["users"]) == (9, None)  # alice's were 70 days ago
    assert ranked[frodo]["messages"] == 4 and ranked[sam]["messages"] == 2
    legacy = await analytics.get("/api/conversation-stats/characters", headers=alice.headers)
    assert legacy.status_code == 200


@pytest.mark.parametrize("path", ["/conversation-stats/me", "/conversation-stats/characters"])
async def test_bad_periods_and_limits_are_refused(analytics, new_user, path):
    user = new_user()
    for params in (
        {"period": "year"},
        {"period": ""},
        {"limit": 0},
        {"limit": 101},
        {"limit": "x" * 5000},
        {"period": "week", "since": "2026-01-01"},  # unknown parameters are refused, not ignored
    ):
        r = await analytics.get(path, params=params, headers=user.headers)
        assert r.status_code == 422, (params, r.text)
        assert r.json()["detail"]["code"] == "VALIDATION_ERROR"
