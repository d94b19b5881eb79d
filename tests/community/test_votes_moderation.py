"""Votes (one per user and target, exact counts under concurrency, changes and removals), reports
and moderators' actions (audited; removed content leaves feeds and share links)."""

from __future__ import annotations

import asyncio
import uuid

from community_service.service import hot
from shared.testing.poll import holding


async def _published(client, user, title="Votes test", body="A story to vote on.") -> str:
    r = await client.post("/stories", json={}, headers=user.headers)
    sid = r.json()["id"]
    r = await client.patch(
        f"/stories/{sid}", json={"title": title, "body": body}, headers={**user.headers, "If-Match": '"1"'}
    )
    assert r.status_code == 200, r.text
    r = await client.post(f"/stories/{sid}/publish", json={"visibility": "public"}, headers=user.headers)
    assert r.status_code == 200, r.text
    return sid


async def test_100_concurrent_voters_give_an_exact_score(client, new_user, community_db, event_spy):
    author = new_user()
    sid = await _published(client, author)
    voters = [new_user() for _ in range(100)]

    async def vote(user, value):
        r = await client.put(
            "/votes", json={"target_type": "story", "target_id": sid, "value": value}, headers=user.headers
        )
        assert r.status_code == 200, r.text
        return r.json()

    async with event_spy(["story.voted"]) as spy:
        await asyncio.gather(*[vote(u, 1) for u in voters])
        voted = await spy.wait_for("story.voted", count=100, story_id=sid, timeout=20)
    # Each event carries what its own vote saw: scores 1..100 once each, previous 0, the author.
    assert sorted(e.data["score"] for e in voted) == list(range(1, 101))
    assert {(e.data["previous"], e.data["value"], e.data["author_id"], e.data["down"]) for e in voted} == {
        (0, 1, author.id, 0)
    }
    assert all(e.data["up"] == e.data["score"] for e in voted)
    r = await client.get(f"/stories/{sid}", headers=voters[0].headers)
    assert (r.json()["score"], r.json()["up"], r.json()["down"], r.json()["my_vote"]) == (100, 100, 0, 1)

    # The same voters again, concurrently: 30 switch to down, 20 withdraw, 50 repeat their up vote
    # (and each of the 30 sends its change twice at once: the unique vote row absorbs it).
    async def withdraw(user):
        r = await client.delete(f"/votes/story/{sid}", headers=user.headers)
        assert r.status_code == 200, r.text

    await asyncio.gather(
        *[vote(u, -1) for u in voters[:30]],
        *[vote(u, -1) for u in voters[:30]],
        *[withdraw(u) for u in voters[30:50]],
        *[vote(u, 1) for u in voters[50:]],
    )
    r = await client.get(f"/stories/{sid}", headers=voters[0].headers)
    assert (r.json()["score"], r.json()["up"], r.json()["down"], r.json()["my_vote"]) == (20, 50, 30, -1)
    # The counters equal the votes table.
    rows = await community_db.fetch("SELECT value, count(*) AS n FROM votes WHERE target_id = $1 GROUP BY value", sid)
    assert {r["value"]: r["n"] for r in rows} == {1: 50, -1: 30}
    # The hot value the vote statement stored (SQL's community_hot) is service.hot()'s.
    story = await community_db.fetchrow("SELECT score, hot, published_at FROM stories WHERE id = $1", sid)
    assert story["hot"] == hot(story["score"], story["published_at"]) == hot(20, story["published_at"])
    assert (await client.get(f"/stories/{sid}", headers=voters[40].headers)).json()["my_vote"] == 0


async def test_one_users_concurrent_changes_of_a_vote_move_the_counters_once(client, new_user, community_db):
    sid = await _published(client, new_user(), title="One change")
    voter = new_user()

    async def vote(value):
        r = await client.put(
            "/votes", json={"target_type": "story", "target_id": sid, "value": value}, headers=voter.headers
        )
        assert r.status_code == 200, r.text

    await vote(1)
    # Hold the vote row; two changes to a down vote are sent at once and both seen waiting on it
    # (reading the vote, or, were it read unlocked, writing it), then released together.
    holds_vote = "SELECT 1 FROM votes WHERE target_type = 'story' AND target_id = $1 AND user_id = $2 FOR UPDATE"
    async with holding(community_db, holds_vote, uuid.UUID(sid), voter.id) as release_when_waiting:
        changes = [asyncio.create_task(vote(-1)) for _ in range(2)]
        await release_when_waiting("votes", 2)
        await asyncio.gather(*changes)
    r = await client.get(f"/stories/{sid}", headers=voter.headers)
    assert (r.json()["score"], r.json()["up"], r.json()["down"], r.json()["my_vote"]) == (-1, 0, 1, -1)


async def test_a_vote_waiting_on_the_story_adds_to_what_committed_meanwhile(client, new_user, community_db):
    """The counters move by relative increments on the row as committed when the vote gets its
    lock, not as its statement first saw it: another instance's batch that commits +5 while this
    vote waits is kept (+5, then +1)."""
    sid = await _published(client, new_user(), title="Relative")
    voter = new_user()
    other_instance_batch = "UPDATE stories SET up = up + 5, score = score + 5 WHERE id = $1"
    async with holding(community_db, other_instance_batch, uuid.UUID(sid), commit=True) as commit_when_waiting:
        vote = asyncio.create_task(
            client.put("/votes", json={"target_type": "story", "target_id": sid, "value": 1}, headers=voter.headers)
        )
        await commit_when_waiting("votes", 1)
        r = await vote
    assert r.status_code == 200, r.text
    assert (r.json()["score"], r.json()["up"], r.json()["down"]) == (6, 6, 0)
    row = await community_db.fetchrow("SELECT up, down, score, hot, published_at FROM stories WHERE id = $1", sid)
    assert (row["up"], row["down"], row["score"]) == (6, 0, 6)
    assert row["hot"] == hot(6, row["published_at"])


async def test_votes_need_a_visible_target(client, new_user):
    author, other = new_user(), new_user()
    r = await client.post("/stories", json={}, headers=author.headers)
    draft = r.json()["id"]
    r = await client.put("/votes", json={"target_type": "story", "target_id": draft, "value": 1}, headers=other.headers)
    assert r.status_code == 404 and r.json()["detail"]["code"] == "TARGET_NOT_FOUND"
    r = await client.put(
        "/votes", json={"target_type": "story", "target_id": "nope", "value": 1}, headers=other.headers
    )
    assert r.status_code == 404
    # Characters and scenarios carry votes too.
    r = await client.post(
        "/scenarios",
        headers=author.headers,
        json={"title": "Heist", "setting": "A casino", "tone": "tense", "visibility": "public"},
    )
    scen = r.json()["id"]
    r = await client.put(
        "/votes", json={"target_type": "scenario", "target_id": scen, "value": 1}, headers=other.headers
    )
    assert r.status_code == 200 and r.json()["score"] == 1
    r = await client.get(f"/scenarios/{scen}", headers=other.headers)
    assert (r.json()["score"], r.json()["my_vote"]) == (1, 1)


async def test_reports_and_removal_by_a_moderator_with_an_audit_row(client, new_user, tokens, community_db):
    author, reporter, moderator = (
        new_user(),
        new_user(),
        new_user(extra_claims={"app_metadata": {"provider": "email", "tier": 0, "roles": ["moderator"]}}),
    )
    tag = author.id[:8]
    sid = await _published(client, author, title=f"mod-{tag}")
    share = (await client.post(f"/stories/{sid}/share", headers=author.headers)).json()
    r = await client.post(
        "/reports", json={"target_type": "story", "target_id": sid, "reason": "spam"}, headers=reporter.headers
    )
    assert r.status_code == 201, r.text
    r = await client.post(
        "/reports", json={"target_type": "story", "target_id": sid, "reason": "spam"}, headers=reporter.headers
    )
    assert r.status_code == 409 and r.json()["detail"]["code"] == "ALREADY_REPORTED"

    # Users may not see the queue or act.
    r = await client.get("/moderation/queue", headers=reporter.headers)
    assert r.status_code == 403 and r.json()["detail"]["code"] == "MODERATOR_REQUIRED"
    r = await client.post(f"/moderation/story/{sid}/remove", headers=author.headers)
    assert r.status_code == 403
    r = await client.get("/moderation/queue", headers=moderator.headers)
    entry = next(e for e in r.json()["queue"] if e["target_id"] == sid)
    assert entry["reports"] == 1 and entry["reasons"] == ["spam"]

    r = await client.post(f"/moderation/story/{sid}/remove", json={"note": "spam ring"}, headers=moderator.headers)
    assert r.status_code == 200, r.text
    audit = await community_db.fetchrow("SELECT * FROM moderation_actions WHERE id = $1", r.json()["audit_id"])
    assert (audit["action"], audit["actor_id"], audit["actor_role"], audit["note"]) == (
        "remove",
        moderator.id,
        "moderator",
        "spam ring",
    )
    # Gone from the feed, the share link and direct reads; out of the queue.
    r = await client.get("/stories", params={"sort": "new", "q": f"mod-{tag}"}, headers=reporter.headers)
    assert r.json()["stories"] == []
    assert (await client.get(f"/shared/stories/{share['token']}")).status_code == 404
    assert (await client.get(f"/stories/{sid}", headers=reporter.headers)).status_code == 404
    r = await client.get("/moderation/queue", headers=moderator.headers)
    assert sid not in [e["target_id"] for e in r.json()["queue"]]
    # A service token may act too (approve is audited as well).
    scen = (
        await client.post(
            "/scenarios",
            headers=author.headers,
            json={"title": "Calm", "setting": "A lake", "tone": "quiet", "visibility": "public"},
        )
    ).json()["id"]
    r = await client.post(f"/moderation/scenario/{scen}/approve", headers=tokens.headers(tokens.service()))
    assert r.status_code == 200 and r.json()["action"] == "approve"
