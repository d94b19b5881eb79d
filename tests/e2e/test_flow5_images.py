"""Flow 5 (group chat with characters picked from favourites, popular characters and recent chats)
and image generation against the monthly quota, across six running services (Auth, Payment, Chat,
Content, Community, Media), over HTTP only; the sandbox plays the LLMs, Stripe and the image
providers, Azurite the blob storage."""

from __future__ import annotations

import json
import re
import time

import httpx
import pytest

from tests.e2e.fans import quota, sign_up, talk
from tests.e2e.fleets import running_fleet
from tests.e2e.test_flows import checkout

SERVICES = ("auth", "payment", "chat", "content", "community", "media")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def fleet(e2e_env, sandbox_handle, infra, tmp_path_factory):
    """This module's own fleet of six, Stripe's webhooks going to its Payment."""
    env = {**e2e_env, **sandbox_handle.env(keys=True)}
    log_dir = tmp_path_factory.mktemp("fleet6")
    with running_fleet(env, sandbox_handle, infra, log_dir, services=SERVICES, stripe_webhooks=True) as f:
        yield f


def _llm_calls_since(sandbox, since: int) -> list[dict]:
    """The in-character completions the sandbox model received (follow-up question calls left out)."""
    calls = []
    for provider, path in (("anthropic", "/v1/messages"), ("openai", "/chat/completions")):
        for c in sandbox.control.requests(provider=provider, since=since):
            if not c["path"].endswith(path) or not isinstance(c.get("body"), dict):
                continue
            body = c["body"]
            system = body.get("system")
            if system is None:  # OpenAI-compatible: the system prompt is the first message
                system = next((m.get("content") for m in body.get("messages", []) if m.get("role") == "system"), "")
            if isinstance(system, list):
                system = " ".join(p.get("text", "") for p in system if isinstance(p, dict))
            if "group scene" in (system or "") and "follow-up" not in json.dumps(body).lower():
                calls.append({"system": system, "messages": body.get("messages", []), "id": c["id"]})
    return calls


def _request_mark(sandbox) -> int:
    return max((r["id"] for r in sandbox.control.requests()), default=0)


async def test_flow5_group_chat_from_favourites_popular_and_recent(fleet, http, outbox):
    fan = await sign_up(http, outbox)
    maker = await sign_up(http, outbox)

    # Popular characters, from Content. One whose name the sandbox model reads back whole
    # ("You are <Capitalised Words>"), so its answer can be told from the others' ("Bruce Wayne /
    # Batman" would come back as "Bruce Wayne").
    plain = re.compile(r"[A-Z][\w'-]*( [A-Z][\w'-]*){0,4}")
    taken = {"Hermione Granger", "Luke Skywalker"}

    def pick(characters: list[dict]) -> dict:
        return next(c for c in characters if plain.fullmatch(c.get("name") or "") and c["name"] not in taken)

    r = await http.content.get("/popular", params={"type": "character", "limit": 20})
    assert r.status_code == 200, r.text
    popular = pick(r.json()["results"])
    from_popular = {"name": popular["name"], "series": popular.get("title_name") or popular.get("title")}
    taken.add(popular["name"])

    # Favourites, through Community: a Content character from the cast of the most popular movie
    # (checked against Content), and a public character another fan made.
    r = await http.content.get("/popular", params={"type": "movie", "limit": 1})
    assert r.status_code == 200, r.text
    movie = r.json()["results"][0]
    r = await http.content.get(f"/resources/movies/{str(movie['id']).rsplit(':', 1)[-1]}/characters")
    assert r.status_code == 200, r.text
    liked = pick(r.json()["characters"])
    taken.add(liked["name"])
    liked_key = liked.get("key") or liked["id"]  # "character:<id>" (the cast lists full records)
    assert str(liked_key).startswith("character:"), liked
    r = await http.community.put(f"/favorites/character/{liked_key}", headers=fan.headers)
    assert r.status_code == 204, r.text
    r = await http.community.post(
        "/characters",
        json={
            "name": "Hermione Granger",
            "series": "Harry Potter",
            "description": "The brightest witch of her age.",
            "personality": "Clever, loyal, a little bossy.",
            "visibility": "public",
        },
        headers=maker.headers,
    )
    assert r.status_code == 201, r.text
    r = await http.community.put(f"/favorites/character/{r.json()['id']}", headers=fan.headers)
    assert r.status_code == 204, r.text
    r = await http.community.get("/favorites", params={"kind": "character"}, headers=fan.headers)
    assert r.status_code == 200, r.text
    favourites = {f["source"]: f["character"] for f in r.json()["favorites"]}
    from_favourites = [
        {"name": favourites["content"]["name"], "series": favourites["content"]["series"]},
        {"name": favourites["community"]["name"], "series": favourites["community"]["series"]},
    ]
    assert from_favourites == [
        {"name": liked["name"], "series": movie["name"]},
        {"name": "Hermione Granger", "series": "Harry Potter"},
    ]

    # Recent chats, from Chat.
    r = await talk(http, fan, "Hello Luke, how is the farm?")
    assert r.status_code == 200, r.text
    r = await http.chat.get("/conversations", headers=fan.headers)
    assert r.status_code == 200, r.text
    recent = r.json()["conversations"][0]
    from_recent = {"name": recent["character"], "series": recent["series"]}
    assert from_recent == {"name": "Luke Skywalker", "series": "Star Wars"}

    # The group: the message names them in the order they should answer. The custom character
    # joins by its id, so Chat reads its definition (personality included) from Community.
    custom = {"character_id": favourites["community"]["id"]}
    cast = [from_favourites[0], custom, from_popular, from_recent]
    order = [from_recent["name"], from_favourites[1]["name"], from_popular["name"], from_favourites[0]["name"]]
    message = f"{order[0]}, {order[1]}, {order[2]} and {order[3]}: who would win a quiz night?"
    mark = _request_mark(fleet.sandbox)
    r = await http.chat.post("/group_chat", json={"characters": cast, "message": message}, headers=fan.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    cid = body["conversation_id"]
    assert body["turn_order"] == order
    assert [x["sender"] for x in body["replies"]] == order
    for reply in body["replies"]:  # the sandbox model answers as the "You are <Name>" of its prompt
        assert reply["response"].startswith(f"{reply['sender']} here."), reply
    assert body["replies"][0]["response"].startswith(f"{order[0]} here. You said: {message[:40]}")

    # What the model was given: one call per speaker, in turn, each with its own persona.
    calls = sorted(_llm_calls_since(fleet.sandbox, mark), key=lambda c: c["id"])
    assert [c["system"].split(",")[0].split(".")[0] for c in calls] == [f"You are {n}" for n in order]
    named = [*from_favourites, from_popular, from_recent]
    for call, character in zip(calls, sorted(named, key=lambda c: order.index(c["name"])), strict=True):
        assert call["system"].startswith(f"You are {character['name']}, the character from {character['series']}")
        others = [n for n in order if n != character["name"]]
        assert all(n in call["system"].split("group scene with ", 1)[1][:200] for n in others), call["system"]
    # The custom character speaks with the personality its maker gave it, and only it does.
    with_personality = [c["system"].split(",")[0] for c in calls if "Clever, loyal, a little bossy." in c["system"]]
    assert with_personality == ["You are Hermione Granger"]
    # Each one in its own turn: a speaker's prompt carries the lines of those who answered before it
    # (named), and no line of those after it.
    for i, call in enumerate(calls):
        turns = json.dumps(call["messages"])
        for j, reply in enumerate(body["replies"]):
            line = f"[{reply['sender']}]: {reply['response'][:30]}"
            assert (line in turns) == (j < i), (i, j, turns)

    # The conversation as Chat stores it: the fan's line, then the four replies in turn order.
    r = await http.chat.get(f"/conversations/{cid}", headers=fan.headers)
    assert r.status_code == 200, r.text
    conv = r.json()
    assert conv["conversation"]["type"] == "group"
    participants = conv["conversation"]["participants"]
    assert sorted(p["name"] for p in participants) == sorted(order)
    assert [p.get("character_id") for p in participants if p["name"] == "Hermione Granger"] == [custom["character_id"]]
    assert [(m["role"], m["sender"]) for m in conv["messages"]] == [("user", "user")] + [
        ("assistant", n) for n in order
    ]
    assert [m["content"] for m in conv["messages"][1:]] == [x["response"] for x in body["replies"]]
    assert conv["messages"][0]["content"] == message

    # The next turn continues the scene with its cast; a mention picks the speaker.
    r = await http.chat.post(
        "/group_chat", json={"conversation_id": cid, "message": f"{order[3]}, your answer?"}, headers=fan.headers
    )
    assert r.status_code == 200, r.text
    assert r.json()["turn_order"] == [order[3]]
    conv = (await http.chat.get(f"/conversations/{cid}", headers=fan.headers)).json()
    assert [m["sender"] for m in conv["messages"]] == ["user", *order, "user", order[3]]
    # Another user sees none of it.
    assert (await http.chat.get(f"/conversations/{cid}", headers=maker.headers)).status_code == 404
    r = await http.chat.post("/group_chat", json={"conversation_id": cid, "message": "hi"}, headers=maker.headers)
    assert r.status_code == 404


async def _fetch(url: str) -> bytes:
    async with httpx.AsyncClient(timeout=15, trust_env=False) as c:
        r = await c.get(url)
    assert r.status_code == 200, (url, r.status_code)
    return r.content


async def test_images_until_the_quota_is_spent_then_max(fleet, http, outbox):
    free = await sign_up(http, outbox)
    r = await http.media.post("/images/generate", json={"prompt": "a lighthouse at dusk"}, headers=free.headers)
    assert r.status_code == 402 and r.json()["detail"]["code"] == "INSUFFICIENT_TIER", r.text

    fan = await sign_up(http, outbox)
    session = await checkout(http, fleet, fan, "pro")
    done = fleet.sandbox.control.stripe_complete_checkout(session["session_id"])
    assert all(d["status"] == 200 for d in done["deliveries"]), done["deliveries"]

    async def generate(prompt: str) -> httpx.Response:
        return await http.media.post("/images/generate", json={"prompt": prompt}, headers=fan.headers)

    # The first generation may race the tier's arrival (the webhook is answered; the tier is in Redis).
    deadline = time.monotonic() + 10
    while (r := await generate("a lighthouse at dusk, number 0")).status_code == 402:
        assert r.json()["detail"]["code"] == "INSUFFICIENT_TIER" and time.monotonic() < deadline, r.text
    made = []
    for i in range(5):
        if i:
            r = await generate(f"a lighthouse at dusk, number {i}")
        assert r.status_code == 201, r.text
        assert r.json()["remaining_quota"] == 4 - i
        made += [img["id"] for img in r.json()["images"]]
    r = await generate("one more lighthouse")
    assert r.status_code == 402, r.text
    detail = r.json()["detail"]
    assert detail["code"] == "INSUFFICIENT_QUOTA" and detail["quota_type"] == "image_gen", detail
    assert (await quota(http, fan))["quotas"]["image_gen"]["remaining"] == 0

    # Upgrade to Max. A subscriber does not check out a second time (409, pointing at
    # /subscription/change); the change is made at Stripe, and Stripe's webhook for it reaches Payment.
    r = await http.payment.post("/create-checkout-session", json={"tier": "max"}, headers=fan.headers)
    assert r.status_code == 409 and r.json()["detail"]["code"] == "ALREADY_SUBSCRIBED", r.text
    to_payment = [d for d in fleet.sandbox.control.stripe_deliveries() if d["url"].startswith(fleet.url("payment"))]
    r = await http.payment.post("/subscription/change", json={"tier": "max"}, headers=fan.headers)
    assert r.status_code == 200, r.text
    assert r.json()["tier"] == 2
    deliveries = [d for d in fleet.sandbox.control.stripe_deliveries() if d["url"].startswith(fleet.url("payment"))]
    new = deliveries[len(to_payment) :]
    assert "customer.subscription.updated" in [d["type"] for d in new], new
    assert all(d["status"] == 200 for d in deliveries), deliveries
    for i in range(3):
        r = await generate(f"a lighthouse in a storm, number {i}")
        assert r.status_code == 201, r.text
        assert r.json()["remaining_quota"] == -1
        made += [img["id"] for img in r.json()["images"]]
    assert (await quota(http, fan))["quotas"]["image_gen"]["remaining"] == -1

    # The images are listed, newest first, and their SAS URLs give real PNGs from Azurite.
    r = await http.media.get("/images", params={"limit": 20}, headers=fan.headers)
    assert r.status_code == 200, r.text
    listed = r.json()["images"]
    assert [img["id"] for img in listed] == list(reversed(made))
    for img in listed:
        assert "sig=" in img["url"]
        data = await _fetch(img["url"])
        assert data.startswith(PNG_SIGNATURE) and len(data) == img["bytes"]
        thumbnail = await _fetch(img["thumbnail_url"])
        assert thumbnail[:4] == b"RIFF" and thumbnail[8:12] == b"WEBP"  # thumbnails are WebP
    # Another user's list does not show them.
    assert (await http.media.get("/images", headers=free.headers)).json()["images"] == []
    assert (await http.media.get(f"/images/{made[0]}", headers=free.headers)).status_code == 404
