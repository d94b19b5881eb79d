"""The first page of each public feed is kept encoded for a short time (community_service/feed_cache.py):
every caller still gets their own my_vote, the stories as GET /stories/{id} shows them, publication and
removal at once, votes within the ttl (1 s by default)."""

from __future__ import annotations

import asyncio

import pytest_asyncio

TTL = 1.0  # Settings.feed_cache_seconds' default, which the test client runs with


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def first_page(client):
    async def read(user, sort="new", limit=5) -> list[dict]:
        r = await client.get("/stories", params={"scope": "public", "sort": sort, "limit": limit}, headers=user.headers)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/json"
        return r.json()

    return read


async def _publish(client, author, title: str) -> str:
    sid = (await client.post("/stories", json={}, headers=author.headers)).json()["id"]
    r = await client.patch(
        f"/stories/{sid}", json={"title": title, "body": "Cached."}, headers={**author.headers, "If-Match": '"1"'}
    )
    assert r.status_code == 200, r.text
    r = await client.post(f"/stories/{sid}/publish", json={"visibility": "public"}, headers=author.headers)
    assert r.status_code == 200, r.text
    return sid


async def _vote(client, user, sid: str, value: int) -> dict:
    r = await client.put(
        "/votes", json={"target_type": "story", "target_id": sid, "value": value}, headers=user.headers
    )
    assert r.status_code == 200, r.text
    return r.json()


async def test_cached_first_page_has_each_callers_vote_and_the_stories_as_they_are(client, new_user, first_page):
    author, fan, critic, reader = new_user(), new_user(), new_user(), new_user()
    older = await _publish(client, author, "Cached older")
    await _vote(client, fan, older, 1)
    await _vote(client, critic, older, -1)
    newer = await _publish(client, author, "Cached newer")  # publication clears the pages: it shows at once
    pages = {u: await first_page(u) for u in (fan, critic, reader)}
    for user, mine in ((fan, 1), (critic, -1), (reader, 0)):
        stories = pages[user]["stories"]
        assert [s["id"] for s in stories[:2]] == [newer, older]
        assert [s["my_vote"] for s in stories[:2]] == [0, mine]
        # Each story is what GET /stories/{id} answers the same caller.
        for story in stories[:2]:
            assert story == (await client.get(f"/stories/{story['id']}", headers=user.headers)).json()
    assert pages[fan]["stories"][1]["up"] == pages[fan]["stories"][1]["down"] == 1
    # The next page follows from the cached page's cursor.
    page = await first_page(reader, limit=1)
    r = await client.get(
        "/stories",
        params={"scope": "public", "sort": "new", "limit": 1, "cursor": page["next_cursor"]},
        headers=reader.headers,
    )
    assert [s["id"] for s in page["stories"] + r.json()["stories"]] == [newer, older]


async def test_a_vote_shows_in_the_cached_page_within_the_ttl_and_removal_at_once(client, new_user, first_page):
    author, voter = new_user(), new_user()
    moderator = new_user(extra_claims={"app_metadata": {"provider": "email", "tier": 0, "roles": ["moderator"]}})
    sid = await _publish(client, author, "Cached votes")
    before = (await first_page(voter, sort="new"))["stories"][0]
    assert (before["id"], before["score"], before["my_vote"]) == (sid, 0, 0)
    answer = await _vote(client, voter, sid, 1)
    assert answer["score"] == 1  # the vote's own answer is exact at once
    now = (await first_page(voter, sort="new"))["stories"][0]
    assert now["my_vote"] == 1  # the caller's vote is read live
    assert now["score"] in (0, 1)  # the shared part may be up to the ttl old
    await asyncio.sleep(TTL + 0.2)
    later = (await first_page(voter, sort="new"))["stories"][0]
    assert (later["id"], later["score"], later["up"], later["my_vote"]) == (sid, 1, 1, 1)

    # A moderator's removal leaves the cached page at once (this process cleared its pages).
    r = await client.post(f"/moderation/story/{sid}/remove", headers=moderator.headers)
    assert r.status_code == 200, r.text
    assert sid not in [s["id"] for s in (await first_page(voter, sort="new"))["stories"]]
