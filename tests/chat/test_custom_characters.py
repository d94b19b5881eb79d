"""Talking with Community's custom characters: /talk_with, /group_chat and regenerate with
`character_id`, the definition read from a real Community process over HTTP with the caller's
token (public, or the caller's own; anyone else's private one is 404), cached with its privacy
kept, dropped on `character.updated`, and Community down → 503 with no quota spent."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
import pytest_asyncio

from chat_service.custom_characters import CustomCharacters
from shared.testing.processes import ServiceProcess

from .conftest import KEYS, _free_port


@pytest.fixture(scope="module")
def community(service_env, llm_sandbox, core_schema, tmp_path_factory):
    """Community as a real uvicorn process (Chat reaches it over HTTP only)."""
    env = {**service_env, **llm_sandbox.env, **KEYS, "OUTBOX_RELAY": "inprocess"}
    proc = ServiceProcess("community", env, log_dir=tmp_path_factory.mktemp("community-logs"))
    proc.start(timeout=120)
    try:
        yield proc
    finally:
        proc.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def chat_c(make_client, chat_env, community):
    async with make_client("chat", **chat_env, COMMUNITY_SERVICE_URL=community.url) as client:
        yield client


DEFINITION = {
    "name": "Captain Vexa",
    "series": "Starlight Rebels",
    "description": "A smuggler captain who once stole a moon.",
    "personality": "Sardonic, loyal to her crew, allergic to authority.",
    "greeting": "Well, well. Another stowaway.",
    "example_dialogue": "User: Who are you?\nCaptain Vexa: The reason your customs office cries at night.",
}


def as_json(value):
    return json.loads(value) if isinstance(value, str) else value


async def make_character(community, user, visibility="private", **changes) -> str:
    async with httpx.AsyncClient(base_url=community.url, timeout=30) as c:
        r = await c.post("/characters", json={**DEFINITION, **changes, "visibility": visibility}, headers=user.headers)
    assert r.status_code == 201, r.text
    return r.json()["id"]


async def last_system_prompt(llm_sandbox) -> str:
    calls = await llm_sandbox.requests(provider="anthropic", path="/v1/messages")
    # The reply's own call (follow-up questions are a later call with their own prompt).
    prompts = [c["body"]["system"] for c in calls if "Stay in character" in str(c["body"].get("system"))]
    return str(prompts[-1])


async def test_talk_with_a_custom_character_builds_the_prompt_from_its_definition(
    chat_c, community, new_user, chat_db, llm_sandbox
):
    owner = new_user()
    cid = await make_character(community, owner, name="Captain Vexa One")
    r = await chat_c.post("/talk_with", json={"message": "Who are you?", "character_id": cid}, headers=owner.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    system = await last_system_prompt(llm_sandbox)
    for part in ("You are Captain Vexa One", "Starlight Rebels", "stole a moon", "allergic to authority"):
        assert part in system
    assert "Another stowaway" in system and "customs office cries" in system
    conv = await chat_db.fetchrow(
        "SELECT character_name, participants FROM conversations WHERE id = $1", uuid.UUID(body["conversation_id"])
    )
    assert conv["character_name"] == "Captain Vexa One"
    assert as_json(conv["participants"])[0]["character_id"] == cid
    sender = await chat_db.fetchval("SELECT sender FROM messages WHERE id = $1", uuid.UUID(body["message_id"]))
    assert sender == "Captain Vexa One"

    # The conversation goes on with the same definition, without naming the character again.
    await llm_sandbox.reset()
    r = await chat_c.post(
        "/talk_with",
        json={"message": "And your ship?", "character": "ignored", "conversation_id": body["conversation_id"]},
        headers=owner.headers,
    )
    assert r.status_code == 200, r.text
    assert "allergic to authority" in await last_system_prompt(llm_sandbox)

    # Regenerate reads it again too.
    await llm_sandbox.reset()
    r = await chat_c.post(f"/conversations/{body['conversation_id']}/regenerate", headers=owner.headers)
    assert r.status_code == 200, r.text
    assert "allergic to authority" in await last_system_prompt(llm_sandbox)


async def test_another_users_private_character_is_404_and_spends_nothing(chat_c, community, new_user):
    owner, other = new_user(), new_user()
    private = await make_character(community, owner, name="Private Vexa")
    # The owner's talk caches the definition; the cache must not show it to anyone else.
    r = await chat_c.post("/talk_with", json={"message": "hi", "character_id": private}, headers=owner.headers)
    assert r.status_code == 200, r.text
    for _ in range(2):
        r = await chat_c.post("/talk_with", json={"message": "hi", "character_id": private}, headers=other.headers)
        assert r.status_code == 404, r.text
        assert r.json()["detail"]["code"] == "CHARACTER_NOT_FOUND"
    # An id that is nobody's, and a group with the private one: 404 too.
    r = await chat_c.post(
        "/talk_with", json={"message": "hi", "character_id": str(uuid.uuid4())}, headers=other.headers
    )
    assert r.status_code == 404 and r.json()["detail"]["code"] == "CHARACTER_NOT_FOUND"
    r = await chat_c.post(
        "/group_chat",
        json={"message": "hi all", "characters": [{"name": "Batman"}, {"character_id": private}]},
        headers=other.headers,
    )
    assert r.status_code == 404 and r.json()["detail"]["code"] == "CHARACTER_NOT_FOUND"
    # None of that spent anything: the first real conversation leaves 4 of the free 5.
    r = await chat_c.post("/talk_with", json={"message": "hi", "character": "Batman"}, headers=other.headers)
    assert r.status_code == 200 and r.json()["remaining_quota"] == 4

    # A public character is anyone's to talk with.
    public = await make_character(community, owner, visibility="public", name="Public Vexa")
    r = await chat_c.post("/talk_with", json={"message": "hi", "character_id": public}, headers=other.headers)
    assert r.status_code == 200, r.text


async def test_group_chat_with_a_custom_character(chat_c, community, new_user, chat_db, llm_sandbox):
    owner = new_user()
    cid = await make_character(community, owner, name="Group Vexa")
    r = await chat_c.post(
        "/group_chat",
        json={
            "message": "Group Vexa, Batman: plan the heist.",
            "characters": [{"name": "Batman"}, {"character_id": cid}],
        },
        headers=owner.headers,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert "Group Vexa" in body["turn_order"]
    participants = await chat_db.fetchval(
        "SELECT participants FROM conversations WHERE id = $1", uuid.UUID(body["conversation_id"])
    )
    assert {p["name"]: p.get("character_id") for p in as_json(participants)} == {"Batman": None, "Group Vexa": cid}
    calls = await llm_sandbox.requests(provider="anthropic", path="/v1/messages")
    assert any("allergic to authority" in str(c["body"].get("system")) for c in calls)
    # And the conversation goes on with the same cast.
    r = await chat_c.post(
        "/group_chat", json={"message": "Go on.", "conversation_id": body["conversation_id"]}, headers=owner.headers
    )
    assert r.status_code == 200, r.text


async def test_an_edit_in_community_reaches_the_next_turn(chat_c, community, new_user, llm_sandbox, eventually):
    owner = new_user()
    cid = await make_character(community, owner, name="Edited Vexa")
    r = await chat_c.post("/talk_with", json={"message": "hi", "character_id": cid}, headers=owner.headers)
    assert r.status_code == 200, r.text
    async with httpx.AsyncClient(base_url=community.url, timeout=30) as c:
        r = await c.patch(f"/characters/{cid}", json={"personality": "Gentle and shy now."}, headers=owner.headers)
        assert r.status_code == 200, r.text
    # character.updated drops chat's cached copy (well before its TTL).
    custom: CustomCharacters = chat_c.app.state.custom_characters

    async def dropped():
        return await custom._cached(cid) is None

    await eventually(dropped, timeout=20)
    await llm_sandbox.reset()
    r = await chat_c.post("/talk_with", json={"message": "hi again", "character_id": cid}, headers=owner.headers)
    assert r.status_code == 200, r.text
    assert "Gentle and shy now." in await last_system_prompt(llm_sandbox)


async def test_community_down_is_a_clear_503_and_charges_nothing(make_client, chat_env, new_user):
    user = new_user()
    closed = f"http://127.0.0.1:{_free_port()}"
    async with make_client("chat", **chat_env, COMMUNITY_SERVICE_URL=closed) as chat:
        r = await chat.post(
            "/talk_with", json={"message": "hi", "character_id": str(uuid.uuid4())}, headers=user.headers
        )
        assert r.status_code == 503, r.text
        assert r.json()["detail"]["code"] == "COMMUNITY_UNAVAILABLE"
        r = await chat.post(
            "/group_chat",
            json={"message": "hi", "characters": [{"character_id": str(uuid.uuid4())}]},
            headers=user.headers,
        )
        assert r.status_code == 503 and r.json()["detail"]["code"] == "COMMUNITY_UNAVAILABLE"
        r = await chat.post("/talk_with", json={"message": "hi", "character": "Batman"}, headers=user.headers)
        assert r.status_code == 200 and r.json()["remaining_quota"] == 4


@pytest.mark.parametrize(
    "body",
    [
        {"message": "hi"},  # neither a character nor an id
        {"message": "hi", "character_id": "not-a-uuid"},
        {"message": "hi", "character_id": "1" * 5000},
        {"message": "hi", "character_id": 42},
    ],
)
async def test_bad_character_ids_are_422(chat_c, new_user, body):
    r = await chat_c.post("/talk_with", json=body, headers=new_user().headers)
    assert r.status_code == 422, r.text
    assert r.json()["detail"]["code"] == "VALIDATION_ERROR"


async def test_a_custom_character_needs_a_valid_token(chat_c, community, new_user):
    cid = await make_character(community, new_user(), visibility="public", name="Token Vexa")
    for headers in ({}, {"Authorization": "Bearer not-a-jwt"}):
        r = await chat_c.post("/talk_with", json={"message": "hi", "character_id": cid}, headers=headers)
        assert r.status_code == 401, r.text
