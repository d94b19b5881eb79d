"""Stories end to end: the wizard from a real chat conversation (Chat as a process, over HTTP) to a
published, exported and shared story; versions and If-Match; moderation (the sandbox's OpenAI
moderation endpoint); feeds; privacy of drafts."""

from __future__ import annotations

import asyncio
import uuid

import httpx

from community_service.service import hot
from shared.testing.poll import holding


async def _conversation(chat_url: str, user) -> str:
    async with httpx.AsyncClient(base_url=chat_url, timeout=30) as chat:
        r = await chat.post(
            "/talk_with",
            headers=user.headers,
            json={"message": "Why do you wear a mask?", "character": "Batman", "series": "The Dark Knight"},
        )
        assert r.status_code == 200, r.text
        conversation_id = r.json()["conversation_id"]
        r = await chat.post(
            "/talk_with",
            headers=user.headers,
            json={
                "message": "Who is the Joker?",
                "character": "Batman",
                "series": "The Dark Knight",
                "conversation_id": conversation_id,
            },
        )
        assert r.status_code == 200, r.text
    return conversation_id


async def _draft_with_text(client, user, body: str, title: str = "A night in Gotham") -> dict:
    r = await client.post("/stories", json={}, headers=user.headers)
    assert r.status_code == 201, r.text
    story = r.json()
    r = await client.patch(
        f"/stories/{story['id']}",
        json={"title": title, "body": body},
        headers={**user.headers, "If-Match": f'"{story["version"]}"'},
    )
    assert r.status_code == 200, r.text
    return r.json()


async def test_wizard_from_a_chat_conversation_to_a_published_exported_shared_story(
    client, chat_process, new_user, event_spy
):
    author = new_user()
    conversation_id = await _conversation(chat_process.url, author)

    async with event_spy(["story.*"]) as spy:
        r = await client.post("/stories", json={"from_conversation_id": conversation_id}, headers=author.headers)
        assert r.status_code == 201, r.text
        story = r.json()
        sid = story["id"]
        assert story["status"] == "draft" and story["step"] == "universe" and story["version"] == 1
        assert r.headers["etag"] == '"1"'
        assert story["source"]["conversation_id"] == conversation_id
        assert story["source"]["character"] == "Batman"
        assert story["source"]["message_count"] == 4  # two user messages, two replies, read from Chat

        # Step 1: a TMDB title, checked against Content (The Dark Knight is in the sandbox's TMDB).
        r = await client.put(
            f"/stories/{sid}/universe", json={"tmdb": {"type": "movie", "id": 155}}, headers=author.headers
        )
        assert r.status_code == 200, r.text
        assert r.json()["universe"]["name"] == "The Dark Knight"
        assert r.json()["step"] == "characters" and r.json()["version"] == 2
        r = await client.put(
            f"/stories/{sid}/universe", json={"tmdb": {"type": "movie", "id": 999999999}}, headers=author.headers
        )
        assert r.status_code == 404 and r.json()["detail"]["code"] == "TITLE_NOT_FOUND"

        # Step 2: 1-5 characters; a custom character by id.
        r = await client.post(
            "/characters",
            headers=author.headers,
            json={
                "name": "Officer Renee",
                "series": "The Dark Knight",
                "description": "A rookie cop.",
                "personality": "Dry humour, stubborn, loyal to Gordon.",
                "visibility": "private",
            },
        )
        assert r.status_code == 201, r.text
        custom_id = r.json()["id"]
        six = [{"name": f"Extra {i}", "series": "The Dark Knight"} for i in range(6)]
        r = await client.put(f"/stories/{sid}/characters", json={"characters": six}, headers=author.headers)
        assert r.status_code == 422 and r.json()["detail"]["code"] == "TOO_MANY_CHARACTERS"
        r = await client.put(
            f"/stories/{sid}/characters",
            headers=author.headers,
            json={"characters": [{"name": "Batman", "series": "The Dark Knight"}, {"character_id": custom_id}]},
        )
        assert r.status_code == 200, r.text
        assert [c["name"] for c in r.json()["characters"]] == ["Batman", "Officer Renee"]
        assert r.json()["characters"][1]["personality"].startswith("Dry humour")

        # Step 3: the scenario, from the library.
        r = await client.post(
            "/scenarios",
            headers=author.headers,
            json={
                "title": "Rooftop standoff",
                "setting": "Gotham rooftops at midnight",
                "tone": "noir",
                "themes": ["justice"],
                "visibility": "private",
            },
        )
        assert r.status_code == 201, r.text
        r = await client.put(
            f"/stories/{sid}/scenario",
            headers=author.headers,
            json={
                "setting": "Gotham rooftops",
                "tone": "noir",
                "themes": ["justice", "fear"],
                "scenario_id": r.json()["id"],
            },
        )
        assert r.status_code == 200, r.text
        assert r.json()["scenario"]["title"] == "Rooftop standoff" and r.json()["step"] == "generation"
        version = r.json()["version"]

        # The text: a new version under If-Match (the resumed draft reads back the same).
        r = await client.get(f"/stories/{sid}", headers=author.headers)
        assert r.json()["version"] == version and r.headers["etag"] == f'"{version}"'
        text = {"title": "Gotham Nights", "body": "Rain on the cape.\nÉclair ☂"}
        r = await client.patch(f"/stories/{sid}", json=text, headers={**author.headers, "If-Match": f'"{version}"'})
        assert r.status_code == 200, r.text
        assert r.json()["version"] == version + 1 and r.json()["step"] == "edit"

        r = await client.post(f"/stories/{sid}/publish", json={"visibility": "public"}, headers=author.headers)
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "published" and r.json()["visibility"] == "public"
        await spy.wait_for("story.created", story_id=sid)
        await spy.wait_for("story.published", story_id=sid)

    # History: every edit is a version, newest first.
    r = await client.get(f"/stories/{sid}/versions", headers=author.headers)
    changes = [v["change"] for v in r.json()["versions"]]
    assert changes == ["edit", "scenario", "characters", "universe", "created"]

    # Another user reads it (published), finds it in the feed.
    reader = new_user()
    r = await client.get(f"/stories/{sid}", headers=reader.headers)
    assert r.status_code == 200 and r.json()["title"] == "Gotham Nights" and "source" not in r.json()
    r = await client.get("/stories", params={"sort": "new", "q": "Gotham Nights"}, headers=reader.headers)
    assert sid in [s["id"] for s in r.json()["stories"]]

    # Export in the three formats.
    r = await client.get(f"/stories/{sid}/export", params={"format": "txt"}, headers=reader.headers)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    assert r.text.startswith("Gotham Nights\nUniverse: The Dark Knight\nCharacters: Batman, Officer Renee")
    assert "Éclair ☂" in r.text
    r = await client.get(f"/stories/{sid}/export", params={"format": "md"}, headers=author.headers)
    assert r.text.startswith("# Gotham Nights") and "Rain on the cape." in r.text
    r = await client.get(f"/stories/{sid}/export", params={"format": "pdf"}, headers=author.headers)
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    assert r.content.startswith(b"%PDF-") and r.content.rstrip().endswith(b"%%EOF")
    assert 'filename="Gotham-Nights.pdf"' in r.headers["content-disposition"]

    # Share: the same link each time, readable without a token.
    r = await client.post(f"/stories/{sid}/share", headers=author.headers)
    assert r.status_code == 200, r.text
    share = r.json()
    assert share["url"] == f"https://scenextras.test/shared/stories/{share['token']}"
    assert share["social"]["twitter"].startswith("https://twitter.com/intent/tweet?url=https%3A%2F%2Fscenextras.test")
    assert set(share["social"]) == {"twitter", "facebook", "reddit"}
    assert (await client.post(f"/stories/{sid}/share", headers=author.headers)).json()["token"] == share["token"]
    r = await client.get(f"/shared/stories/{share['token']}")
    assert r.status_code == 200 and r.json()["body"].startswith("Rain on the cape.")
    r = await client.get("/shared/stories/not-a-real-token")
    assert r.status_code == 404 and r.json()["detail"]["code"] == "SHARE_NOT_FOUND"


async def test_another_users_conversation_cannot_be_imported(client, chat_process, new_user):
    owner, other = new_user(), new_user()
    conversation_id = await _conversation(chat_process.url, owner)
    r = await client.post("/stories", json={"from_conversation_id": conversation_id}, headers=other.headers)
    assert r.status_code == 404 and r.json()["detail"]["code"] == "CONVERSATION_NOT_FOUND"
    r = await client.get("/stories", params={"scope": "mine"}, headers=other.headers)
    assert r.json()["stories"] == []


async def test_if_match_is_required_and_a_stale_version_is_refused(client, new_user, community_db):
    user = new_user()
    story = await _draft_with_text(client, user, "First text.")
    sid, version = story["id"], story["version"]
    r = await client.patch(f"/stories/{sid}", json={"body": "no precondition"}, headers=user.headers)
    assert r.status_code == 428 and r.json()["detail"]["code"] == "PRECONDITION_REQUIRED"
    r = await client.patch(f"/stories/{sid}", json={"body": "x"}, headers={**user.headers, "If-Match": "banana"})
    assert r.status_code == 400 and r.json()["detail"]["code"] == "INVALID_IF_MATCH"
    at_version = {**user.headers, "If-Match": f'"{version}"'}
    r = await client.patch(f"/stories/{sid}", json={"body": "second"}, headers=at_version)
    assert r.status_code == 200 and r.json()["version"] == version + 1
    # A second editor still holding the old version is refused and changes nothing.
    r = await client.patch(f"/stories/{sid}", json={"body": "stale"}, headers=at_version)
    assert r.status_code == 412 and r.json()["detail"]["code"] == "VERSION_CONFLICT"
    assert r.json()["detail"]["current_version"] == version + 1
    r = await client.get(f"/stories/{sid}", headers=user.headers)
    assert r.json()["body"] == "second" and r.json()["version"] == version + 1
    # Concurrent edits from the same version: exactly one wins. The story row is held while five
    # edits are sent, until all five wait on it (reading it, or, were it read unlocked, writing
    # it), so every run races them: unlocked reads would all see the same version and all win.
    async with holding(
        community_db, "SELECT 1 FROM stories WHERE id = $1 FOR UPDATE", uuid.UUID(sid)
    ) as release_when_waiting:
        racers = [
            asyncio.ensure_future(
                client.patch(
                    f"/stories/{sid}",
                    json={"body": f"racer {i}"},
                    headers={**user.headers, "If-Match": f'"{version + 1}"'},
                )
            )
            for i in range(5)
        ]
        await release_when_waiting("stories", 5)
        answers = await asyncio.gather(*racers)
    assert sorted(a.status_code for a in answers) == [200, 412, 412, 412, 412]
    r = await client.get(f"/stories/{sid}", headers=user.headers)
    assert r.json()["version"] == version + 2 and r.json()["body"].startswith("racer ")


async def test_moderation_rejects_flagged_text_and_publishes_nothing(client, new_user):
    user = new_user()
    story = await _draft_with_text(client, user, "The villain makes a threat. sandbox-flag:violence")
    r = await client.post(f"/stories/{story['id']}/publish", json={"visibility": "public"}, headers=user.headers)
    assert r.status_code == 422, r.text
    assert r.json()["detail"]["code"] == "CONTENT_FLAGGED" and "violence" in r.json()["detail"]["categories"]
    r = await client.get(f"/stories/{story['id']}", headers=user.headers)
    assert r.json()["status"] == "draft"
    assert (await client.get(f"/stories/{story['id']}", headers=new_user().headers)).status_code == 404
    # A public character is moderated too; a private one is not published to anyone, so it is not.
    character = {
        "name": "Grim",
        "description": "sandbox-flag:harassment",
        "personality": "mean",
        "visibility": "public",
    }
    r = await client.post("/characters", json=character, headers=user.headers)
    assert r.status_code == 422 and r.json()["detail"]["code"] == "CONTENT_FLAGGED"
    r = await client.post("/characters", json={**character, "visibility": "private"}, headers=user.headers)
    assert r.status_code == 201


async def test_an_empty_draft_cannot_be_published(client, new_user):
    user = new_user()
    r = await client.post("/stories", json={}, headers=user.headers)
    r = await client.post(f"/stories/{r.json()['id']}/publish", json={}, headers=user.headers)
    assert r.status_code == 409 and r.json()["detail"]["code"] == "STORY_INCOMPLETE"


async def test_another_users_draft_is_404_on_every_route(client, new_user):
    owner, other = new_user(), new_user()
    story = await _draft_with_text(client, owner, "Private draft.")
    sid = story["id"]
    hdr = {**other.headers, "If-Match": f'"{story["version"]}"'}
    calls = [
        client.get(f"/stories/{sid}", headers=hdr),
        client.get(f"/stories/{sid}/versions", headers=hdr),
        client.get(f"/stories/{sid}/export", params={"format": "txt"}, headers=hdr),
        client.patch(f"/stories/{sid}", json={"body": "mine now"}, headers=hdr),
        client.put(f"/stories/{sid}/characters", json={"characters": [{"name": "X"}]}, headers=hdr),
        client.put(f"/stories/{sid}/universe", json={"custom": {"name": "X"}}, headers=hdr),
        client.put(f"/stories/{sid}/scenario", json={"setting": "s", "tone": "t"}, headers=hdr),
        client.post(f"/stories/{sid}/publish", json={}, headers=hdr),
        client.post(f"/stories/{sid}/share", headers=hdr),
        client.delete(f"/stories/{sid}", headers=hdr),
    ]
    for r in await asyncio.gather(*calls):
        assert r.status_code == 404, (r.request.method, r.request.url, r.text)
        assert r.json()["detail"]["code"] == "STORY_NOT_FOUND"
    r = await client.get(f"/stories/{sid}", headers=owner.headers)
    assert r.json()["body"] == "Private draft." and r.json()["version"] == story["version"]


async def test_feeds_sort_by_hot_new_and_top(client, new_user):
    author = new_user()
    tag = author.id[:8]
    ids = []
    for i in range(3):
        s = await _draft_with_text(client, author, f"Story {i}.", title=f"feed-{tag}-{i}")
        r = await client.post(f"/stories/{s['id']}/publish", json={}, headers=author.headers)
        assert r.status_code == 200, r.text
        ids.append(s["id"])
    # Story 0 gets three up votes, story 1 one down vote.
    for _ in range(3):
        r = await client.put(
            "/votes", json={"target_type": "story", "target_id": ids[0], "value": 1}, headers=new_user().headers
        )
        assert r.status_code == 200
    await client.put(
        "/votes", json={"target_type": "story", "target_id": ids[1], "value": -1}, headers=new_user().headers
    )

    async def feed(sort):
        r = await client.get("/stories", params={"sort": sort, "q": f"feed-{tag}"}, headers=author.headers)
        assert r.status_code == 200, r.text
        return [s["id"] for s in r.json()["stories"]]

    assert await feed("new") == [ids[2], ids[1], ids[0]]
    assert await feed("top") == [ids[0], ids[2], ids[1]]
    assert await feed("hot") == [ids[0], ids[2], ids[1]]  # log10(3) beats a few seconds of recency
    # Paging with the cursor walks the same order.
    r = await client.get("/stories", params={"sort": "top", "q": f"feed-{tag}", "limit": 2}, headers=author.headers)
    page1 = r.json()
    r = await client.get(
        "/stories",
        params={"sort": "top", "q": f"feed-{tag}", "limit": 2, "cursor": page1["next_cursor"]},
        headers=author.headers,
    )
    assert [s["id"] for s in page1["stories"] + r.json()["stories"]] == [ids[0], ids[2], ids[1]]
    assert r.json()["next_cursor"] is None


def test_hot_is_reddit_style():
    from datetime import UTC, datetime, timedelta

    t = datetime(2026, 1, 1, tzinfo=UTC)
    assert hot(10, t) - hot(1, t) == 1.0  # ten times the votes: one unit
    assert round(hot(1, t + timedelta(seconds=45_000)) - hot(1, t), 6) == 1.0  # 12.5 hours: one unit
    assert hot(-10, t) < hot(0, t) < hot(10, t)


async def test_editing_a_published_story_is_moderated_again(client, new_user):
    user = new_user()
    story = await _draft_with_text(client, user, "A calm evening.")
    r = await client.post(f"/stories/{story['id']}/publish", json={}, headers=user.headers)
    version = r.json()["version"]
    r = await client.patch(
        f"/stories/{story['id']}",
        json={"body": "Now with sandbox-flag:violence"},
        headers={**user.headers, "If-Match": f'"{version}"'},
    )
    assert r.status_code == 422 and r.json()["detail"]["code"] == "CONTENT_FLAGGED"
    r = await client.get(f"/stories/{story['id']}", headers=new_user().headers)
    assert r.json()["body"] == "A calm evening." and r.json()["version"] == version
