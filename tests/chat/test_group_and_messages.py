"""Group chat turn order, and the message / conversation surface: edit, delete, pin, react,
regenerate, list and detail with cursors, export (txt, md, json, pdf) and share links."""

import io
import json

import pypdf

from chat_service.context import CharacterContext
from chat_service.group_chat import turn_order

CAST = [
    {"name": "Batman", "series": "The Dark Knight"},
    {"name": "Joker", "series": "The Dark Knight"},
    {"name": "Harry Potter", "series": "Harry Potter and the Philosopher's Stone"},
]


def test_turn_order_rules():
    ctx = {
        "Batman": CharacterContext("Batman", bio="A vigilante of Gotham"),
        "Joker": CharacterContext("Joker", bio="A criminal clown of Gotham"),
        "Harry Potter": CharacterContext("Harry Potter", bio="A wizard at Hogwarts"),
    }
    names = list(ctx)
    # Mentions first, in the order the message names them (first names count).
    assert turn_order("Harry, and you too @Joker: who wins?", names, ctx, {}, 3) == ["Harry Potter", "Joker"]
    # No mention: relevance, then whoever waited longest.
    assert (
        turn_order("Any wizard here knows about hogwarts?", names, ctx, {"Batman": 5, "Joker": 3}, 3)[0]
        == "Harry Potter"
    )
    assert turn_order("So, what now?", names, ctx, {"Batman": 5, "Joker": 3, "Harry Potter": 7}, 3) == [
        "Joker",
        "Batman",
        "Harry Potter",
    ]
    assert turn_order("So, what now?", names, ctx, {"Batman": 5, "Joker": 3, "Harry Potter": 7}, 2) == [
        "Joker",
        "Batman",
    ]


async def test_group_chat_scene(chat, new_user, chat_db, llm_sandbox):
    user = new_user()
    r = await chat.post(
        "/group_chat", json={"characters": CAST, "message": "Joker, what do you think of Batman?"}, headers=user.headers
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["turn_order"] == ["Joker", "Batman"]
    assert [x["sender"] for x in body["replies"]] == ["Joker", "Batman"]
    assert body["replies"][0]["response"].startswith("Joker here.")
    assert body["replies"][1]["response"].startswith("Batman here.")
    # Each character kept its own personality prompt; the second saw the first one's line.
    calls = [
        c
        for c in await llm_sandbox.requests(provider="anthropic", path="/v1/messages")
        if "group scene" in c["body"]["system"]
    ]
    assert calls[0]["body"]["system"].startswith("You are Joker") and calls[1]["body"]["system"].startswith(
        "You are Batman"
    )
    assert "[Joker]: Joker here." in json.dumps(calls[1]["body"]["messages"])
    assert body["remaining_quota"] == 4 and len(body["follow_up_questions"]) >= 2
    cid = body["conversation_id"]

    # Next turn without a mention: relevance (Hogwarts is Harry's) first, then who waited longest.
    r = await chat.post(
        "/group_chat",
        json={"conversation_id": cid, "message": "Does anyone know about Hogwarts?"},
        headers=user.headers,
    )
    assert r.status_code == 200, r.text
    assert r.json()["turn_order"][0] == "Harry Potter"
    assert r.json()["remaining_quota"] == 4  # continuing is free
    r = await chat.post("/group_chat", json={"conversation_id": cid, "message": "What now?"}, headers=user.headers)
    # No mention, nothing relevant: whoever spoke least recently goes first.
    assert r.json()["turn_order"] == ["Harry Potter", "Joker", "Batman"]

    # The transcript reads like a scene.
    rows = await chat_db.fetch("SELECT sender FROM messages WHERE conversation_id = $1 ORDER BY seq", cid)
    senders = [r["sender"] for r in rows]
    assert senders[:3] == ["user", "Joker", "Batman"] and set(senders) == {"user", "Joker", "Batman", "Harry Potter"}
    detail = await chat.get(f"/conversations/{cid}", headers=user.headers)
    assert detail.json()["conversation"]["type"] == "group"
    assert [p["name"] for p in detail.json()["conversation"]["participants"]] == ["Batman", "Joker", "Harry Potter"]


async def test_group_chat_limits(chat, new_user):
    user = new_user()
    six = [{"name": f"Character {i}"} for i in range(6)]
    r = await chat.post("/group_chat", json={"characters": six, "message": "hi"}, headers=user.headers)
    assert r.status_code == 422 and r.json()["detail"]["code"] == "TOO_MANY_CHARACTERS"
    r = await chat.post("/group_chat", json={"characters": [], "message": "hi"}, headers=user.headers)
    assert r.json()["detail"]["code"] == "NO_CHARACTERS"
    r = await chat.post(
        "/group_chat",
        json={"characters": [{"name": "Batman"}, {"name": "batman"}], "message": "hi"},
        headers=user.headers,
    )
    assert r.status_code == 409 and r.json()["detail"]["code"] == "DUPLICATE_CHARACTER"
    r = await chat.post("/group_chat", json={"characters": CAST, "message": ""}, headers=user.headers)
    assert r.json()["detail"]["code"] == "EMPTY_MESSAGE"


async def talk(chat, user, message="Hello", **extra):
    r = await chat.post(
        "/talk_with",
        json={"message": message, "character": "Batman", "series": "The Dark Knight", **extra},
        headers=user.headers,
    )
    assert r.status_code == 200, r.text
    return r.json()


async def test_edit_delete_pin_react(chat, new_user, chat_db):
    user = new_user()
    first = await talk(chat, user, "First message")
    cid = first["conversation_id"]
    second = await talk(chat, user, "Second message", conversation_id=cid)

    r = await chat.patch(
        f"/messages/{first['user_message_id']}", json={"content": "First message, edited"}, headers=user.headers
    )
    assert r.status_code == 200 and r.json()["content"] == "First message, edited"
    assert r.json()["metadata"]["edits"][0]["content"] == "First message" and r.json()["edited_at"]
    r = await chat.patch(f"/messages/{first['message_id']}", json={"content": "I am not Batman"}, headers=user.headers)
    assert r.status_code == 403 and r.json()["detail"]["code"] == "CANNOT_EDIT_REPLY"
    r = await chat.patch(f"/messages/{first['user_message_id']}", json={"content": ""}, headers=user.headers)
    assert r.status_code == 422 and r.json()["detail"]["code"] == "EMPTY_MESSAGE"

    r = await chat.post(f"/messages/{first['message_id']}/pin", headers=user.headers)
    assert r.json() == {"id": first["message_id"], "pinned": True}
    detail = (await chat.get(f"/conversations/{cid}", headers=user.headers)).json()
    assert [m["pinned"] for m in detail["messages"]] == [False, True, False, False]
    r = await chat.delete(f"/messages/{first['message_id']}/pin", headers=user.headers)
    assert r.json()["pinned"] is False

    mid = second["message_id"]
    r = await chat.post(f"/messages/{mid}/reactions", json={"reaction": "like"}, headers=user.headers)
    assert r.json()["reactions"] == {"like": 1, "dislike": 0, "mine": ["like"]}
    r = await chat.post(f"/messages/{mid}/reactions", json={"reaction": "like"}, headers=user.headers)
    assert r.json()["reactions"]["like"] == 1  # one per user and kind
    r = await chat.post(f"/messages/{mid}/reactions", json={"reaction": "dislike"}, headers=user.headers)
    assert r.json()["reactions"] == {"like": 0, "dislike": 1, "mine": ["dislike"]}
    r = await chat.post(f"/messages/{mid}/reactions", json={"reaction": "love"}, headers=user.headers)
    assert r.status_code == 422
    r = await chat.delete(f"/messages/{mid}/reactions/dislike", headers=user.headers)
    assert r.json()["reactions"] == {"like": 0, "dislike": 0, "mine": []}

    assert (await chat.delete(f"/messages/{second['user_message_id']}", headers=user.headers)).status_code == 204
    detail = (await chat.get(f"/conversations/{cid}", headers=user.headers)).json()
    assert detail["conversation"]["message_count"] == 3 and len(detail["messages"]) == 3


async def test_regenerate_keeps_the_old_reply_as_an_alternative(chat, new_user, llm_sandbox, chat_db):
    user = new_user()
    await llm_sandbox.config(tag_replies=True)
    first = await talk(chat, user, "Who are you?")
    r = await chat.post(
        f"/conversations/{first['conversation_id']}/regenerate", json={"model": "gpt-4o-mini"}, headers=user.headers
    )
    assert r.status_code == 200, r.text
    [msg] = r.json()["messages"]
    assert msg["id"] == first["message_id"]
    assert msg["content"].endswith("[via openai]") and first["response"].endswith("[via anthropic]")
    assert msg["metadata"]["alternatives"][0]["content"] == first["response"]
    assert msg["metadata"]["model"] == "gpt-4o-mini"
    # The model was asked about the same last user message.
    call = (await llm_sandbox.requests(provider="openai", path="/chat/completions"))[0]
    assert call["body"]["messages"][-1]["content"] == "Who are you?"
    empty = new_user()
    r = await chat.post("/group_chat", json={"characters": CAST[:1], "message": "hi"}, headers=empty.headers)
    await chat_db.execute("DELETE FROM messages WHERE conversation_id = $1", r.json()["conversation_id"])
    r = await chat.post(f"/conversations/{r.json()['conversation_id']}/regenerate", headers=empty.headers)
    assert r.status_code == 409 and r.json()["detail"]["code"] == "NOTHING_TO_REGENERATE"


async def test_export_in_every_format(chat, new_user):
    user = new_user()
    first = await talk(chat, user, "Meet me on the rooftop at midnight")
    cid = first["conversation_id"]
    for fmt, ctype in [("txt", "text/plain"), ("md", "text/markdown"), ("json", "application/json")]:
        r = await chat.get(f"/conversations/{cid}/export?format={fmt}", headers=user.headers)
        assert r.status_code == 200 and r.headers["content-type"].startswith(ctype)
        assert f".{fmt}" in r.headers["content-disposition"]
        assert "Meet me on the rooftop at midnight" in r.text and first["response"] in r.text.replace("\\", "")
    data = json.loads((await chat.get(f"/conversations/{cid}/export?format=json", headers=user.headers)).text)
    assert [m["sender"] for m in data["messages"]] == ["user", "Batman"]
    r = await chat.get(f"/conversations/{cid}/export?format=pdf", headers=user.headers)
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    reader = pypdf.PdfReader(io.BytesIO(r.content))
    text = " ".join(page.extract_text() for page in reader.pages)
    assert "Meet me on the rooftop at midnight" in " ".join(text.split())
    assert "Batman here." in text
    r = await chat.get(f"/conversations/{cid}/export?format=docx", headers=user.headers)
    assert r.status_code == 422 and r.json()["detail"]["code"] == "UNSUPPORTED_FORMAT"


async def test_share_link_is_read_only_and_revocable(chat, new_user):
    user = new_user()
    first = await talk(chat, user, "A secret for the world")
    cid = first["conversation_id"]
    r = await chat.post(f"/conversations/{cid}/share", headers=user.headers)
    token = r.json()["share_token"]
    assert r.json()["url"].endswith(f"/shared/{token}")
    assert (await chat.post(f"/conversations/{cid}/share", headers=user.headers)).json()["share_token"] == token
    public = await chat.get(f"/shared/{token}")  # no token needed
    assert public.status_code == 200
    assert [m["content"] for m in public.json()["messages"]][0] == "A secret for the world"
    assert "user_id" not in json.dumps(public.json())
    assert (await chat.post(f"/shared/{token}")).status_code == 405  # read-only
    assert (await chat.delete(f"/conversations/{cid}/share", headers=user.headers)).status_code == 204
    assert (await chat.get(f"/shared/{token}")).status_code == 404


async def test_list_and_detail_with_cursors_and_delete(chat, new_user):
    user = new_user()
    ids = [(await talk(chat, user, f"conversation {i}"))["conversation_id"] for i in range(3)]
    page1 = (await chat.get("/conversations?limit=2", headers=user.headers)).json()
    assert [c["id"] for c in page1["conversations"]] == [ids[2], ids[1]] and page1["next_cursor"]
    page2 = (await chat.get(f"/conversations?limit=2&cursor={page1['next_cursor']}", headers=user.headers)).json()
    assert [c["id"] for c in page2["conversations"]] == [ids[0]] and page2["next_cursor"] is None
    bad = await chat.get("/conversations?cursor=garbage!!", headers=user.headers)
    assert bad.status_code == 422 and bad.json()["detail"]["code"] == "INVALID_CURSOR"

    cid = ids[0]
    for i in range(2):
        await talk(chat, user, f"more {i}", conversation_id=cid)
    d1 = (await chat.get(f"/conversations/{cid}?limit=4", headers=user.headers)).json()
    assert [m["content"] for m in d1["messages"] if m["role"] == "user"] == ["more 0", "more 1"]
    d2 = (await chat.get(f"/conversations/{cid}?limit=4&cursor={d1['next_cursor']}", headers=user.headers)).json()
    assert [m["content"] for m in d2["messages"]][0] == "conversation 0" and d2["next_cursor"] is None

    assert (await chat.delete(f"/conversations/{cid}", headers=user.headers)).status_code == 204
    assert (await chat.get(f"/conversations/{cid}", headers=user.headers)).status_code == 404
    assert (await chat.delete(f"/conversations/{cid}", headers=user.headers)).status_code == 404


async def test_regenerate_a_group_turn_keeps_the_speakers(chat, new_user, llm_sandbox):
    user = new_user()
    r = await chat.post(
        "/group_chat", json={"characters": CAST, "message": "Batman and Joker: truce?"}, headers=user.headers
    )
    body = r.json()
    await llm_sandbox.config(tag_replies=True)
    r = await chat.post(f"/conversations/{body['conversation_id']}/regenerate", headers=user.headers)
    assert r.status_code == 200, r.text
    msgs = r.json()["messages"]
    assert [m["sender"] for m in msgs] == ["Batman", "Joker"]
    assert [m["id"] for m in msgs] == [x["message_id"] for x in body["replies"]]
    assert msgs[0]["content"].startswith("Batman here.") and msgs[0]["content"].endswith("[via anthropic]")
    assert msgs[1]["metadata"]["alternatives"][0]["content"] == body["replies"][1]["response"]
