"""user.deleted (from the bus, through the consumer) erases the user's community content:
published stories are removed, not orphaned; their votes leave the counters."""

from __future__ import annotations

from shared.bus.publisher import EventPublisher
from shared.events import make_event


async def test_user_deleted_erases_content_and_removes_published_stories(
    client, new_user, service_env, community_db, eventually
):
    gone, reader = new_user(), new_user()
    tag = gone.id[:8]
    # A published story (shared, voted on), a draft, a public character, a scenario, a universe, favourites.
    r = await client.post("/stories", json={}, headers=gone.headers)
    published = r.json()["id"]
    await client.patch(
        f"/stories/{published}",
        json={"title": f"erase-{tag}", "body": "Soon gone."},
        headers={**gone.headers, "If-Match": '"1"'},
    )
    assert (await client.post(f"/stories/{published}/publish", json={}, headers=gone.headers)).status_code == 200
    token = (await client.post(f"/stories/{published}/share", headers=gone.headers)).json()["token"]
    draft = (await client.post("/stories", json={}, headers=gone.headers)).json()["id"]
    character = (
        await client.post(
            "/characters",
            headers=gone.headers,
            json={"name": f"Erased {tag}", "description": "d", "personality": "p", "visibility": "public"},
        )
    ).json()["id"]
    await client.post("/scenarios", headers=gone.headers, json={"title": "t", "setting": "s", "tone": "t"})
    await client.post("/universes", headers=gone.headers, json={"name": "u"})
    await client.put("/favorites/title/movie:155", headers=gone.headers)
    # The deleted user voted on someone else's story; a reader voted on theirs.
    other = (await client.post("/stories", json={}, headers=reader.headers)).json()["id"]
    await client.patch(
        f"/stories/{other}", json={"title": "stays", "body": "Stays."}, headers={**reader.headers, "If-Match": '"1"'}
    )
    await client.post(f"/stories/{other}/publish", json={}, headers=reader.headers)
    await client.put("/votes", json={"target_type": "story", "target_id": other, "value": 1}, headers=gone.headers)
    await client.put(
        "/votes", json={"target_type": "story", "target_id": published, "value": 1}, headers=reader.headers
    )
    await client.put(f"/favorites/character/{character}", headers=reader.headers)
    assert (await client.get(f"/stories/{other}", headers=reader.headers)).json()["score"] == 1

    publisher = EventPublisher(service_env["RABBITMQ_URL"], "scenextras.events", name="test-publisher")
    try:
        await publisher.publish(make_event("user.deleted", gone.id, {}))
    finally:
        await publisher.close()

    async def erased():
        return await community_db.fetchval("SELECT count(*) FROM stories WHERE author_id = $1", gone.id) == 0

    await eventually(erased, timeout=15)
    for table, column in (
        ("characters", "owner_id"),
        ("scenarios", "owner_id"),
        ("universes", "owner_id"),
        ("favorites", "user_id"),
        ("votes", "user_id"),
    ):
        assert await community_db.fetchval(f"SELECT count(*) FROM {table} WHERE {column} = $1", gone.id) == 0, table
    # The published story is removed (no text, no author, no versions), not an orphan still on show.
    row = await community_db.fetchrow("SELECT * FROM stories WHERE id = $1", published)
    assert (row["status"], row["title"], row["body"], row["author_id"]) == ("removed", "", "", "")
    assert await community_db.fetchval("SELECT count(*) FROM story_versions WHERE story_id = $1", published) == 0
    assert await community_db.fetchval("SELECT count(*) FROM stories WHERE id = $1", draft) == 0
    assert (await client.get(f"/stories/{published}", headers=reader.headers)).status_code == 404
    assert (await client.get(f"/shared/stories/{token}")).status_code == 404
    r = await client.get("/stories", params={"sort": "new", "q": f"erase-{tag}"}, headers=reader.headers)
    assert r.json()["stories"] == []
    # Their vote left the other story's counters; the reader's favourite of their character is gone.
    assert (await client.get(f"/stories/{other}", headers=reader.headers)).json()["score"] == 0
    assert (await client.get("/favorites", headers=reader.headers)).json()["favorites"] == []
