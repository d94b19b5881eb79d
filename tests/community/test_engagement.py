"""Engagement tracking to PostHog (shared/engagement.py, the official SDK) against the sandbox's
capture endpoint: story published and votes captured with the user as distinct id and the bus
event's own id as PostHog's uuid, no text a user wrote; and a PostHog outage (the capture endpoint
failing, or hanging) costs no request."""

from __future__ import annotations

import asyncio

import httpx
import pytest_asyncio

from .test_votes_moderation import _published

KEY = "phc_community_test"


def _control(community_env) -> str:
    return community_env["POSTHOG_HOST"].removesuffix("/posthog") + "/_sandbox"


async def _captured(community_env, uuids: set[str], timeout: float = 25.0) -> list[dict]:
    """The PostHog events with these uuids, once all have arrived (the SDK flushes every few s)."""
    deadline = asyncio.get_running_loop().time() + timeout
    async with httpx.AsyncClient() as http:
        while True:
            data = (await http.get(_control(community_env) + "/posthog")).json()["data"]
            seen = [e for e in data if e.get("uuid") in uuids]
            if len(seen) >= len(uuids) or asyncio.get_running_loop().time() > deadline:
                return seen
            await asyncio.sleep(0.25)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def tracked(make_client, community_env):
    async with make_client("community", **community_env, POSTHOG_API_KEY=KEY) as c:
        yield c


async def test_story_published_and_votes_reach_posthog(tracked, new_user, event_spy, community_env):
    author, voter = new_user(), new_user()
    async with event_spy(["story.published", "story.voted"]) as spy:
        sid = await _published(tracked, author, title="A secret title")
        r = await tracked.put(
            "/votes", json={"target_type": "story", "target_id": sid, "value": 1}, headers=voter.headers
        )
        assert r.status_code == 200, r.text
        r = await tracked.put(
            "/votes", json={"target_type": "story", "target_id": sid, "value": 1}, headers=voter.headers
        )  # unchanged: no event, nothing captured
        r = await tracked.delete(f"/votes/story/{sid}", headers=voter.headers)
        assert r.status_code == 200, r.text
        published = await spy.wait_for("story.published", story_id=sid)
        voted = await spy.wait_for("story.voted", count=2, story_id=sid)
    bus_ids = {e.event_id for e in published + voted}
    seen = await _captured(community_env, bus_ids)
    # The same events as on the bus (same uuid, so Analytics' forward of them is no second copy).
    assert sorted(e["uuid"] for e in seen) == sorted(bus_ids)
    by_type = {}
    for e in seen:
        by_type.setdefault(e["event"], []).append(e)
    (pub,) = by_type["story.published"]
    assert pub["distinct_id"] == author.id and pub["api_key"] == KEY
    assert pub["properties"]["story_id"] == sid and pub["properties"]["visibility"] == "public"
    assert "title" not in pub["properties"] and "A secret title" not in str(pub)
    votes = sorted(by_type["story.voted"], key=lambda e: e["properties"]["value"], reverse=True)
    assert [(e["distinct_id"], e["properties"]["value"], e["properties"]["previous"]) for e in votes] == [
        (voter.id, 1, 0),
        (voter.id, 0, 1),
    ]
    assert all(e["properties"]["source"] == "community_service" for e in seen)


async def test_a_posthog_outage_costs_no_request(make_client, community_env, new_user, sandbox):
    control = _control(community_env)
    author = new_user()
    async with make_client("community", **community_env, POSTHOG_API_KEY=KEY) as c:
        async with httpx.AsyncClient(base_url=control, timeout=10) as http:
            # PostHog hangs 20 s on every batch: a request that waited on it would not finish in time.
            r = await http.post("/faults", json={"provider": "posthog", "delay_seconds": 20})
            assert r.status_code == 201, r.text
            fault = r.json()["id"]
            try:
                sid = await _published(c, author, title="Outage story")
                voters = [new_user() for _ in range(20)]
                answers = await asyncio.wait_for(
                    asyncio.gather(
                        *[
                            c.put(
                                "/votes", json={"target_type": "story", "target_id": sid, "value": 1}, headers=v.headers
                            )
                            for v in voters
                        ]
                    ),
                    timeout=30,
                )
                assert [a.status_code for a in answers] == [200] * 20
                r = await c.get(f"/stories/{sid}", headers=author.headers)
                assert r.json()["score"] == 20
            finally:
                await http.delete(f"/faults/{fault}")


async def test_room_joined_reaches_posthog(tracked, new_user, event_spy, community_env):
    owner, fan = new_user(), new_user()
    r = await tracked.post("/rooms", json={"name": "Engaged fans", "visibility": "invite"}, headers=owner.headers)
    assert r.status_code == 201, r.text
    room = r.json()
    async with event_spy(["room.joined"]) as spy:
        r = await tracked.post("/rooms/join", json={"invite_code": room["invite_code"]}, headers=fan.headers)
        assert r.status_code == 200 and r.json()["joined"] is True, r.text
        r = await tracked.post("/rooms/join", json={"invite_code": room["invite_code"]}, headers=fan.headers)
        assert r.json()["joined"] is False  # already in: no event, nothing captured
        (joined,) = await spy.wait_for("room.joined", room_id=room["id"])
    (seen,) = await _captured(community_env, {joined.event_id})
    assert seen["event"] == "room.joined" and seen["distinct_id"] == fan.id
    ours = {k: v for k, v in seen["properties"].items() if not k.startswith("$")}  # the SDK adds its own
    assert ours == {"room_id": room["id"], "role": "viewer", "via": "invite", "source": "community_service"}
