"""What each consumed event becomes: the notification kinds, their default channels, and the text.

Pure functions of the event (no I/O), so the consumer can turn a whole batch into rows at once.
Quiet defaults: in-app always; email only for what confirms money (subscription changes, a failed
payment); push for everything except `marketing`. Marketing (no source event yet) is never sent
by email or push without an explicit opt-in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shared.events import Event, EventType

SUBSCRIPTION = "subscription"
PAYMENT_FAILED = "payment_failed"
REFERRAL = "referral"
ROOM_JOINED = "room_joined"
STORY_MILESTONE = "story_milestone"
ACHIEVEMENT = "achievement"
STREAK = "streak"
MARKETING = "marketing"

KINDS = (SUBSCRIPTION, PAYMENT_FAILED, REFERRAL, ROOM_JOINED, STORY_MILESTONE, ACHIEVEMENT, STREAK, MARKETING)
CHANNELS = ("email", "push")

DEFAULTS: dict[str, dict[str, bool]] = {
    "email": {k: k in (SUBSCRIPTION, PAYMENT_FAILED) for k in KINDS},
    "push": {k: k != MARKETING for k in KINDS},
}

# Up-votes a story reaches that are worth telling its author: the first, then each power of ten.
VOTE_MILESTONES = (1, 10, 100, 1_000, 10_000, 100_000, 1_000_000)

CONSUMED = (
    EventType.SUBSCRIPTION_CREATED,  # a first subscription from Free (Payment's name for it): the welcome
    EventType.SUBSCRIPTION_UPGRADED,
    EventType.SUBSCRIPTION_DOWNGRADED,
    EventType.SUBSCRIPTION_CANCELLED,
    EventType.PAYMENT_FAILED,
    EventType.REFERRAL_COMPLETED,
    EventType.ROOM_JOINED,
    EventType.STORY_VOTED,
    EventType.ACHIEVEMENT_UNLOCKED,
    EventType.STREAK_MILESTONE,
)


@dataclass
class Draft:
    """A notification to create (the row's fields but its id and sequence number)."""

    user_id: str
    kind: str
    title: str
    body: str
    dedup_key: str
    data: dict[str, Any] = field(default_factory=dict)


def _str(value: Any, limit: int = 200) -> str:
    return str(value)[:limit] if value is not None else ""


def _subscription(event: Event) -> list[Draft]:
    d = event.data
    tier = _str(d.get("tier_name") or "free").capitalize()
    if event.event_type == EventType.SUBSCRIPTION_CANCELLED:
        ends = d.get("current_period_end")
        title = "Your subscription is cancelled"
        body = f"Your {tier} plan will not renew" + (f"; it stays active until {ends[:10]}." if ends else ".")
        if not d.get("cancel_at_period_end"):
            body = "Your subscription has ended; you are on the Free plan now."
    elif event.event_type in (EventType.SUBSCRIPTION_CREATED, EventType.SUBSCRIPTION_UPGRADED):
        title, body = f"Welcome to {tier}", f"Your plan is now {tier}. Your new limits apply from now on."
    else:
        title, body = f"Your plan is now {tier}", f"Your plan changed to {tier}. Your limits changed with it."
    change = event.event_type.rsplit(".", 1)[1]
    data = {"change": change, "tier": d.get("tier"), "previous_tier": d.get("previous_tier")}
    return [Draft(str(event.user_id), SUBSCRIPTION, title, body, event.event_id, data)]


def _payment_failed(event: Event) -> list[Draft]:
    d = event.data
    grace = d.get("grace_until")
    body = "We could not charge your payment method. Update it to keep your plan"
    body += f" (your plan stays active until {grace[:10]})." if isinstance(grace, str) else "."
    data = {"source": d.get("source"), "grace_until": grace}
    return [Draft(str(event.user_id), PAYMENT_FAILED, "Your payment failed", body, event.event_id, data)]


def _referral(event: Event) -> list[Draft]:
    d = event.data
    referrer = d.get("referrer_id")
    if not referrer:
        return []
    bonus = d.get("bonus_credits")
    body = "Someone joined SceneXtras with your referral code."
    if bonus:
        body += f" You both get {bonus} bonus credits."
    data = {"bonus_credits": bonus}  # not who joined: no other user's id is kept in someone's notifications
    return [Draft(str(referrer), REFERRAL, "Your referral just joined", body, event.event_id, data)]


def _room_joined(event: Event) -> list[Draft]:
    d = event.data
    owner, joiner = d.get("owner_id"), d.get("user_id") or event.user_id
    if not owner or not d.get("room_id") or str(owner) == str(joiner):
        return []
    name = _str(d.get("room_name") or d.get("name"), 100)
    body = f"Someone joined your room {name}." if name else "Someone joined your room."
    data = {"room_id": d.get("room_id"), "role": d.get("role")}  # not the joiner's id (theirs to erase)
    return [Draft(str(owner), ROOM_JOINED, "New member in your room", body, event.event_id, data)]


def _story_voted(event: Event) -> list[Draft]:
    """The highest milestone the story's up-votes reached; the dedup key is the milestone, so the
    same milestone reached again (a vote withdrawn and cast again, a redelivery, events in another
    order) is told once."""
    d = event.data
    author, story, up = d.get("author_id"), d.get("story_id"), d.get("up")
    if not author or not story or not isinstance(up, int) or d.get("value") != 1:
        return []
    reached = [m for m in VOTE_MILESTONES if m <= up]
    if not reached:
        return []
    m = reached[-1]
    title = "Your story got its first vote" if m == 1 else f"Your story reached {m:,} votes"
    body = "Readers like your story." if m == 1 else f"{m:,} readers voted your story up."
    return [Draft(str(author), STORY_MILESTONE, title, body, f"story:{story}:{m}", {"story_id": story, "votes": m})]


def _achievement(event: Event) -> list[Draft]:
    d = event.data
    name = _str(d.get("name") or d.get("code"), 100)
    body = f"You unlocked {name}." + (f" +{d['xp_reward']} XP." if d.get("xp_reward") else "")
    data = {"code": d.get("code"), "xp_reward": d.get("xp_reward")}
    return [Draft(str(event.user_id), ACHIEVEMENT, "Achievement unlocked", body, event.event_id, data)]


def _streak(event: Event) -> list[Draft]:
    days = event.data.get("milestone")
    title = f"{days}-day streak!" if days else "Streak milestone"
    data = {"milestone": days, "flip_ticket_id": event.data.get("flip_ticket_id")}
    return [Draft(str(event.user_id), STREAK, title, "Keep it going: come back tomorrow.", event.event_id, data)]


_BUILDERS = {
    EventType.SUBSCRIPTION_CREATED.value: _subscription,
    EventType.SUBSCRIPTION_UPGRADED.value: _subscription,
    EventType.SUBSCRIPTION_DOWNGRADED.value: _subscription,
    EventType.SUBSCRIPTION_CANCELLED.value: _subscription,
    EventType.PAYMENT_FAILED.value: _payment_failed,
    EventType.REFERRAL_COMPLETED.value: _referral,
    EventType.ROOM_JOINED.value: _room_joined,
    EventType.STORY_VOTED.value: _story_voted,
    EventType.ACHIEVEMENT_UNLOCKED.value: _achievement,
    EventType.STREAK_MILESTONE.value: _streak,
}
# The others name their recipient in the data (the referrer, the room's owner, the story's author).
_BY_DATA = (EventType.REFERRAL_COMPLETED, EventType.ROOM_JOINED, EventType.STORY_VOTED)
_NEEDS_USER = {t for t in _BUILDERS if t not in _BY_DATA}


def drafts_for(event: Event) -> list[Draft]:
    """The notifications one event gives (none for an event missing what it needs)."""
    build = _BUILDERS.get(event.event_type)
    if build is None or (event.event_type in _NEEDS_USER and not event.user_id):
        return []
    return build(event)
