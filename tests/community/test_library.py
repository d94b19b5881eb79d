"""Custom characters, universes, favourites and the scenario library; bad input and bad tokens
on every route (a clear 4xx in the envelope, nothing changed)."""

from __future__ import annotations

import uuid

import pytest

NOBODY = str(uuid.uuid4())


async def test_characters_private_public_and_owned(client, new_user, event_spy):
    owner, other = new_user(), new_user()
    async with event_spy(["character.*"]) as spy:
        r = await client.post(
            "/characters",
            headers=owner.headers,
            json={
                "name": "Captain Vale",
                "series": "Skyward",
                "description": "An airship captain.",
                "personality": "Bold, reckless, kind to her crew.",
                "greeting": "Welcome aboard!",
                "visibility": "private",
            },
        )
        assert r.status_code == 201, r.text
        cid = r.json()["id"]
        await spy.wait_for("character.created", timeout=10)
        assert spy.of_type("character.created")[0].data["character"]["personality"].startswith("Bold")
        # Private: another user cannot see it (404, not 403: its existence is private too).
        assert (await client.get(f"/characters/{cid}", headers=other.headers)).status_code == 404
        r = await client.patch(f"/characters/{cid}", json={"visibility": "public"}, headers=owner.headers)
        assert r.status_code == 200 and r.json()["visibility"] == "public"
        await spy.wait_for("character.updated", timeout=10)
    r = await client.get(f"/characters/{cid}", headers=other.headers)
    assert r.status_code == 200 and r.json()["greeting"] == "Welcome aboard!"
    r = await client.patch(f"/characters/{cid}", json={"name": "Mine"}, headers=other.headers)
    assert r.status_code == 403
    r = await client.get("/characters", params={"scope": "public", "q": "Captain Vale"}, headers=other.headers)
    assert [c["id"] for c in r.json()["characters"]] == [cid]
    r = await client.get("/characters", params={"scope": "mine"}, headers=owner.headers)
    assert [c["id"] for c in r.json()["characters"]] == [cid]
    # Clearing an optional field with null is allowed; nulling a required one is not.
    r = await client.patch(f"/characters/{cid}", json={"greeting": None}, headers=owner.headers)
    assert r.status_code == 200 and r.json()["greeting"] is None
    r = await client.patch(f"/characters/{cid}", json={"name": None}, headers=owner.headers)
    assert r.status_code == 422
    assert (await client.delete(f"/characters/{cid}", headers=other.headers)).status_code == 403
    assert (await client.delete(f"/characters/{cid}", headers=owner.headers)).status_code == 204
    assert (await client.get(f"/characters/{cid}", headers=owner.headers)).status_code == 404


async def test_universes_and_favorites(client, new_user):
    user, other = new_user(), new_user()
    r = await client.post(
        "/universes", json={"name": "Aetheria", "description": "Floating isles."}, headers=user.headers
    )
    assert r.status_code == 201 and r.json()["visibility"] == "private"
    uid = r.json()["id"]
    assert (await client.get(f"/universes/{uid}", headers=other.headers)).status_code == 404
    r = await client.get("/universes", headers=user.headers)
    assert [u["id"] for u in r.json()["universes"]] == [uid]
    # A character in the universe, a story set in it.
    r = await client.post(
        "/characters",
        headers=user.headers,
        json={"name": "Isle Warden", "universe_id": uid, "description": "Keeps the isles.", "personality": "Stern."},
    )
    assert r.status_code == 201 and r.json()["universe_id"] == uid
    r = await client.post(
        "/characters",
        headers=other.headers,
        json={"name": "Thief", "universe_id": uid, "description": "Steals.", "personality": "Sly."},
    )
    assert r.status_code == 404 and r.json()["detail"]["code"] == "UNIVERSE_NOT_FOUND"
    mine = (await client.get("/characters", params={"scope": "mine"}, headers=user.headers)).json()
    cid = mine["characters"][0]["id"]
    story = (await client.post("/stories", json={}, headers=user.headers)).json()
    r = await client.put(f"/stories/{story['id']}/universe", json={"universe_id": uid}, headers=user.headers)
    assert r.status_code == 200 and r.json()["universe"] == {
        "kind": "universe",
        "id": uid,
        "name": "Aetheria",
        "description": "Floating isles.",
    }
    r = await client.put(
        f"/stories/{story['id']}/universe", json={"universe_id": uid}, headers={**user.headers, "If-Match": '"1"'}
    )
    assert r.status_code == 412  # steps honour If-Match when it is sent

    # Favourites: a character and a TMDB title (checked against Content).
    assert (await client.put(f"/favorites/character/{cid}", headers=user.headers)).status_code == 204
    assert (await client.put(f"/favorites/character/{cid}", headers=user.headers)).status_code == 204  # idempotent
    assert (await client.put("/favorites/title/movie:155", headers=user.headers)).status_code == 204
    r = await client.put("/favorites/title/movie:999999999", headers=user.headers)
    assert r.status_code == 404 and r.json()["detail"]["code"] == "TITLE_NOT_FOUND"
    assert (await client.put("/favorites/title/155", headers=user.headers)).status_code == 404
    assert (await client.put(f"/favorites/character/{cid}", headers=other.headers)).status_code == 404  # private
    r = await client.get("/favorites", headers=user.headers)
    assert sorted((f["kind"], f["id"]) for f in r.json()["favorites"]) == [("character", cid), ("title", "movie:155")]
    favorite_character = next(f for f in r.json()["favorites"] if f["kind"] == "character")
    assert favorite_character["character"]["name"] == "Isle Warden"
    r = await client.get("/favorites", params={"kind": "title"}, headers=user.headers)
    assert [f["id"] for f in r.json()["favorites"]] == ["movie:155"]
    assert (await client.delete("/favorites/title/movie:155", headers=user.headers)).status_code == 204
    assert (await client.delete("/favorites/title/movie:155", headers=user.headers)).status_code == 404


async def test_scenario_library_public_and_personal(client, new_user):
    user, other = new_user(), new_user()
    tag = user.id[:8]
    r = await client.post(
        "/scenarios",
        headers=user.headers,
        json={
            "title": f"Lib {tag} public",
            "setting": "A haunted train",
            "tone": "eerie",
            "themes": ["ghosts"],
            "characters": [{"name": "Conductor"}],
            "opening_line": "Tickets, please.",
            "visibility": "public",
        },
    )
    assert r.status_code == 201, r.text
    public_id = r.json()["id"]
    r = await client.post(
        "/scenarios",
        headers=user.headers,
        json={"title": f"Lib {tag} private", "setting": "A diary", "tone": "intimate", "visibility": "private"},
    )
    private_id = r.json()["id"]
    r = await client.get("/scenarios", params={"q": f"Lib {tag}", "sort": "new"}, headers=other.headers)
    assert [s["id"] for s in r.json()["scenarios"]] == [public_id]
    r = await client.get("/scenarios", params={"scope": "mine", "sort": "new"}, headers=user.headers)
    assert [s["id"] for s in r.json()["scenarios"]] == [private_id, public_id]
    assert (await client.get(f"/scenarios/{private_id}", headers=other.headers)).status_code == 404
    assert (await client.patch(f"/scenarios/{public_id}", json={"tone": "x"}, headers=other.headers)).status_code == 403
    r = await client.patch(
        f"/scenarios/{public_id}", json={"tone": "chilling", "themes": ["ghosts", "trains"]}, headers=user.headers
    )
    assert r.status_code == 200 and r.json()["themes"] == ["ghosts", "trains"]
    r = await client.patch(
        f"/scenarios/{private_id}", json={"visibility": "public", "setting": "sandbox-flag"}, headers=user.headers
    )
    assert r.status_code == 422 and r.json()["detail"]["code"] == "CONTENT_FLAGGED"
    assert (await client.get(f"/scenarios/{private_id}", headers=other.headers)).status_code == 404
    assert (await client.delete(f"/scenarios/{public_id}", headers=user.headers)).status_code == 204


BAD_INPUT = [
    ("post", "/characters", {"name": "", "description": "d", "personality": "p"}),
    ("post", "/characters", {"name": "n", "description": "d", "personality": "p", "visibility": "everyone"}),
    ("post", "/characters", {"name": "n", "description": "d", "personality": "p", "mood": "extra field"}),
    ("post", "/characters", {"name": "n" * 500, "description": "d", "personality": "p"}),
    ("get", "/characters?scope=everyone", None),
    ("get", "/characters?cursor=garbage", None),
    ("get", "/characters?limit=0", None),
    ("patch", f"/characters/{NOBODY}", {}),
    ("put", f"/favorites/person/{NOBODY}", None),
    ("post", "/universes", {"name": "   "}),
    ("get", "/universes?scope=all", None),
    ("post", "/scenarios", {"title": "t", "setting": "s", "tone": "t", "themes": ["x"] * 11}),
    (
        "post",
        "/scenarios",
        {"title": "t", "setting": "s", "tone": "t", "characters": [{"name": "a", "character_id": "b"}]},
    ),
    ("get", "/scenarios?sort=random", None),
    ("patch", f"/scenarios/{NOBODY}", {"title": None}),
    ("post", "/stories", {"from_conversation_id": 12}),
    ("post", "/stories", [1, 2]),
    ("put", f"/stories/{NOBODY}/universe", {"tmdb": {"type": "movie", "id": 1}, "custom": {"name": "x"}}),
    ("put", f"/stories/{NOBODY}/universe", {"tmdb": {"type": "book", "id": 1}}),
    ("put", f"/stories/{NOBODY}/universe", {"tmdb": {"type": "movie", "id": -4}}),
    ("put", f"/stories/{NOBODY}/characters", {"characters": "Batman"}),
    ("put", f"/stories/{NOBODY}/scenario", {"setting": "", "tone": "t"}),
    ("patch", f"/stories/{NOBODY}", {}),
    ("post", f"/stories/{NOBODY}/publish", {"visibility": "private"}),
    ("get", "/stories?sort=best", None),
    ("get", "/stories?cursor=%%%", None),
    ("get", f"/stories/{NOBODY}/export?format=docx", None),
    ("put", "/votes", {"target_type": "story", "target_id": NOBODY, "value": 2}),
    ("put", "/votes", {"target_type": "user", "target_id": NOBODY, "value": 1}),
    ("delete", f"/votes/planet/{NOBODY}", None),
    ("post", "/reports", {"target_type": "story", "target_id": NOBODY, "reason": ""}),
    ("post", f"/moderation/story/{NOBODY}/obliterate", None),
]


@pytest.mark.parametrize(("method", "path", "body"), BAD_INPUT, ids=[f"{m} {p}" for m, p, _ in BAD_INPUT])
async def test_bad_input_is_a_4xx_in_the_envelope(client, new_user, method, path, body):
    user = new_user(extra_claims={"app_metadata": {"provider": "email", "tier": 0, "roles": ["moderator"]}})
    kwargs = {"json": body} if body is not None else {}
    r = await client.request(method.upper(), path, headers=user.headers, **kwargs)
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    assert r.status_code in (400, 404, 422), r.text
    assert set(r.json()["detail"]) >= {"code", "message"}
    r = await client.get("/stories", params={"scope": "mine"}, headers=user.headers)
    assert r.json()["stories"] == []


async def test_bad_or_missing_token_is_401_everywhere(client, tokens):
    bad = {"Authorization": "Bearer not.a.jwt"}
    expired = tokens.headers(tokens.user(expires_in=-10))
    routes = [
        ("get", "/stories"),
        ("post", "/stories"),
        ("get", "/characters"),
        ("post", "/characters"),
        ("get", "/favorites"),
        ("get", "/scenarios"),
        ("put", "/votes"),
        ("get", "/universes"),
        ("get", f"/stories/{NOBODY}"),
        ("get", "/moderation/queue"),
    ]
    for method, path in routes:
        for headers in ({}, bad, expired):
            r = await client.request(method.upper(), path, headers=headers, json={} if method != "get" else None)
            assert r.status_code == 401, (method, path, r.text)
            assert r.json()["detail"]["code"] in ("NOT_AUTHENTICATED", "INVALID_TOKEN")
    # The share reader needs no token.
    assert (await client.get("/shared/stories/abcdefgh12345")).status_code == 404


async def test_starting_a_scenario_opens_a_chat_conversation(client, chat_process, new_user):
    import httpx

    user = new_user()
    r = await client.post(
        "/scenarios",
        headers=user.headers,
        json={
            "title": "Interrogation",
            "setting": "Gotham police HQ, 3 a.m.",
            "tone": "tense",
            "themes": ["truth"],
            "characters": [{"name": "Batman", "series": "The Dark Knight"}],
            "opening_line": "Where is Dent?",
        },
    )
    sid = r.json()["id"]
    r = await client.post(f"/scenarios/{sid}/start", headers=user.headers)
    assert r.status_code == 200, r.text
    started = r.json()
    assert started["character"] == "Batman" and started["response"]
    # The conversation is the user's, in Chat, opened with the scenario.
    async with httpx.AsyncClient(base_url=chat_process.url) as chat:
        r = await chat.get(f"/conversations/{started['conversation_id']}", headers=user.headers)
    assert r.status_code == 200, r.text
    first = r.json()["messages"][0]
    assert first["role"] == "user" and "Gotham police HQ, 3 a.m." in first["content"]
    assert "Where is Dent?" in first["content"]
    # Someone else's private scenario: 404; a scenario with no characters: 409.
    assert (await client.post(f"/scenarios/{sid}/start", headers=new_user().headers)).status_code == 404
    empty = (
        await client.post(
            "/scenarios", headers=user.headers, json={"title": "Alone", "setting": "Nowhere", "tone": "flat"}
        )
    ).json()["id"]
    r = await client.post(f"/scenarios/{empty}/start", headers=user.headers)
    assert r.status_code == 409 and r.json()["detail"]["code"] == "SCENARIO_WITHOUT_CHARACTERS"


async def test_a_nul_character_is_refused_with_422_and_stores_nothing(client, new_user):
    """PostgreSQL text cannot hold U+0000: the shared stack answers 422, not 500, and the
    refused statement's transaction leaves nothing behind."""
    owner = new_user()
    body = {"name": "Nul\u0000Captain", "description": "x", "personality": "y", "visibility": "private"}
    r = await client.post("/characters", headers=owner.headers, json=body)
    assert r.status_code == 422, r.text
    assert r.json()["detail"]["code"] == "VALIDATION_ERROR"
    r = await client.get("/characters", headers=owner.headers, params={"scope": "mine"})
    assert r.status_code == 200 and r.json()["characters"] == [], r.text


async def test_content_characters_as_favourites(client, new_user, content_process):
    """Flow 5 picks group members from favourites: a Content character is favourited by its key."""
    import httpx

    user, other = new_user(), new_user()
    async with httpx.AsyncClient(base_url=content_process.url, trust_env=False) as content:
        cast = (await content.get("/resources/movies/155/characters")).json()["characters"]
    joker = next(c for c in cast if c["name"] == "Joker")
    key = joker["key"]  # the entity's key, "character:<id>"
    assert key.startswith("character:")
    assert (await client.put(f"/favorites/character/{key}", headers=user.headers)).status_code == 204
    assert (await client.put(f"/favorites/character/{key}", headers=user.headers)).status_code == 204
    for missing in ("character:999999999", "character:", "character:bad id", "character:1:2"):
        r = await client.put(f"/favorites/character/{missing}", headers=user.headers)
        assert r.status_code == 404 and r.json()["detail"]["code"] == "CHARACTER_NOT_FOUND", (missing, r.text)
    r = await client.get("/favorites", params={"kind": "character"}, headers=user.headers)
    assert r.status_code == 200, r.text
    [favourite] = r.json()["favorites"]
    assert favourite["id"] == key and favourite["source"] == "content"
    assert favourite["character"] == {
        "id": key,
        "name": "Joker",
        "series": "The Dark Knight",
        "actor": favourite["character"]["actor"],
    }
    assert favourite["character"]["actor"]
    # Another user's list does not have it; deleting it is the caller's own.
    assert (await client.get("/favorites", headers=other.headers)).json()["favorites"] == []
    assert (await client.delete(f"/favorites/character/{key}", headers=other.headers)).status_code == 404
    assert (await client.delete(f"/favorites/character/{key}", headers=user.headers)).status_code == 204
    assert (await client.get("/favorites", headers=user.headers)).json()["favorites"] == []
