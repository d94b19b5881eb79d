"""Live co-editing at /rooms/{id}/doc against Community as a real uvicorn process: pycrdt clients
(pycrdt.Provider over httpx-ws) editing concurrently converge and the story gets the merged text as
a version; a viewer's edits are refused; the document survives the room closing and reopening;
bad tokens and non-members are refused at the handshake (not a 500)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import anyio
import httpx
import pytest
import pytest_asyncio
from httpx_ws import WebSocketDisconnect, WebSocketUpgradeError, aconnect_ws
from pycrdt import (
    Doc,
    Provider,
    Text,
    YMessageType,
    YSyncMessageType,
    create_sync_message,
    create_update_message,
    handle_sync_message,
)
from pycrdt.websocket.websocket import HttpxWebsocket

from tests.community.conftest import _process


@pytest.fixture(scope="module")
def community(service_env, room_env, tmp_path_factory):
    env = {**service_env, **room_env, "OUTBOX_RELAY": "inprocess"}
    with _process("community", env, tmp_path_factory.mktemp("community-logs")) as proc:
        yield proc


@pytest_asyncio.fixture(loop_scope="session")
async def http(community):
    async with httpx.AsyncClient(base_url=community.url, timeout=30) as client:
        yield client


def ws_url(http: httpx.AsyncClient, room_id: str) -> str:
    return f"{str(http.base_url).replace('http', 'ws', 1).rstrip('/')}/rooms/{room_id}/doc"


@contextlib.asynccontextmanager
async def editing(http: httpx.AsyncClient, room_id: str, token: str, doc: Doc | None = None):
    """A pycrdt client on the room's document (token as a subprotocol, as a browser sends it),
    synchronised before the body runs."""
    doc = doc or Doc()
    async with aconnect_ws(ws_url(http, room_id), http, subprotocols=["yjs", f"bearer.{token}"]) as ws:
        async with Provider(doc, HttpxWebsocket(ws, room_id)) as provider:
            with anyio.fail_after(10):
                await provider.synced.wait()
            yield doc


def body(doc: Doc) -> str:
    return str(doc.get("body", type=Text))


async def until(predicate, timeout: float = 10.0):
    with anyio.fail_after(timeout):
        while not predicate():  # noqa: ASYNC110 (a document's text, no event to wait on)
            await asyncio.sleep(0.02)


async def _story_room(http, owner, text: str | None):
    story_id = None
    if text is not None:
        story_id = (await http.post("/stories", json={}, headers=owner.headers)).json()["id"]
        r = await http.patch(
            f"/stories/{story_id}",
            json={"title": "Co-written", "body": text},
            headers={**owner.headers, "If-Match": '"1"'},
        )
        assert r.status_code == 200, r.text
    r = await http.post("/rooms", json={"name": "writers", "story_id": story_id}, headers=owner.headers)
    assert r.status_code == 201, r.text
    return story_id, r.json()


async def _member(http, owner, room, user, role: str):
    r = await http.post("/rooms/join", json={"invite_code": room["invite_code"]}, headers=user.headers)
    assert r.status_code == 200, r.text
    if role != "viewer":
        r = await http.patch(f"/rooms/{room['id']}/members/{user.id}", json={"role": role}, headers=owner.headers)
        assert r.status_code == 200, r.text


def closed(http, owner, room_id: str):
    """The room's document closed in the worker (its last client left: saved and compacted)."""

    async def _closed() -> bool:
        r = await http.get(f"/rooms/{room_id}", headers=owner.headers)
        return r.json()["document"] == {"open": False, "connections": 0}

    return _closed


async def test_two_editors_converge_and_the_story_gets_the_merged_text(http, new_user, community_db, eventually):
    owner, editor = new_user(), new_user()
    story_id, room = await _story_room(http, owner, "The ship landed.")
    await _member(http, owner, room, editor, "editor")
    async with editing(http, room["id"], owner.token) as a, editing(http, room["id"], editor.token) as b:
        # Both start from the story's text, seeded once (not twice by two first connections).
        await until(lambda: body(a) == body(b) == "The ship landed.")

        async def type_into(doc: Doc, words: list[str], at_start: bool):
            text = doc.get("body", type=Text)
            for word in words:
                text.insert(0 if at_start else len(text), word)
                await asyncio.sleep(0.01)

        async with anyio.create_task_group() as tg:
            tg.start_soon(type_into, a, ["Alpha. ", "Beta. ", "Gamma. "], True)
            tg.start_soon(type_into, b, [" Delta.", " Epsilon.", " Zeta."], False)
        await until(lambda: body(a) == body(b) and "Zeta" in body(a) and "Gamma" in body(b))
        merged = body(a)
        assert merged == "Gamma. Beta. Alpha. The ship landed. Delta. Epsilon. Zeta."

        # Saved periodically while the room is open (ROOM_DOC_SAVE_SECONDS=0.5).
        async def saved():
            r = await http.get(f"/stories/{story_id}", headers=owner.headers)
            return r.json()["body"] == merged

        await eventually(saved, timeout=10)
    versions = (await http.get(f"/stories/{story_id}/versions", headers=owner.headers)).json()["versions"]
    assert any(v["change"] == "collab" for v in versions)

    # The last one out: the text is saved and the stored updates compacted.
    await eventually(closed(http, owner, room["id"]), timeout=10)
    story = (await http.get(f"/stories/{story_id}", headers=owner.headers)).json()
    assert story["body"] == merged
    # Reopened unchanged, the document is the stored one; after an edit outside the room
    # (PATCH while it was closed), it opens with the story's new text.
    async with editing(http, room["id"], editor.token) as doc:
        assert body(doc) == merged
    await eventually(closed(http, owner, room["id"]), timeout=10)
    r = await http.patch(
        f"/stories/{story_id}",
        json={"body": "Rewritten outside."},
        headers={**owner.headers, "If-Match": f'"{story["version"]}"'},
    )
    assert r.status_code == 200, r.text
    async with editing(http, room["id"], editor.token) as doc:
        assert body(doc) == "Rewritten outside."


async def test_a_viewers_edits_are_refused_but_they_read(http, new_user, community_db, eventually):
    owner, viewer = new_user(), new_user()
    story_id, room = await _story_room(http, owner, "Read only.")
    await _member(http, owner, room, viewer, "viewer")
    async with editing(http, room["id"], owner.token) as owner_doc:
        async with aconnect_ws(ws_url(http, room["id"]) + f"?token={viewer.token}", http) as ws:
            # The viewer's document: synchronised by hand, so we know when the server has read each message.
            mine = Doc()
            first = await ws.receive_bytes()  # the server's sync step 1
            assert first[0] == YMessageType.SYNC and first[1] == YSyncMessageType.SYNC_STEP1
            await ws.send_bytes(create_sync_message(mine))
            reply = await ws.receive_bytes()
            while reply[:2] != bytes([YMessageType.SYNC, YSyncMessageType.SYNC_STEP2]):
                reply = await ws.receive_bytes()
            handle_sync_message(reply[1:], mine)
            assert body(mine) == "Read only."
            # An edit, sent as an update and as a sync step 2: both dropped.
            before = mine.get_state()
            mine.get("body", type=Text).insert(0, "VANDALISED ")
            edit = mine.get_update(before)
            await ws.send_bytes(create_update_message(edit))
            await ws.send_bytes(
                bytes([YMessageType.SYNC, YSyncMessageType.SYNC_STEP2]) + create_update_message(edit)[2:]
            )
            # A sync step 1 after them: once its answer comes, the server has handled both edits.
            await ws.send_bytes(create_sync_message(Doc()))
            reply = await ws.receive_bytes()
            while reply[:2] != bytes([YMessageType.SYNC, YSyncMessageType.SYNC_STEP2]):
                reply = await ws.receive_bytes()
            server = Doc()
            handle_sync_message(reply[1:], server)
            assert body(server) == "Read only."
            # The viewer still reads: the owner's edit reaches them.
            owner_doc.get("body", type=Text).insert(len(body(owner_doc)), " Owner was here.")
            update = await ws.receive_bytes()
            while update[:2] != bytes([YMessageType.SYNC, YSyncMessageType.SYNC_UPDATE]):
                update = await ws.receive_bytes()
            assert body(owner_doc) == "Read only. Owner was here."
    await eventually(closed(http, owner, room["id"]), timeout=10)
    story = (await http.get(f"/stories/{story_id}", headers=owner.headers)).json()
    assert story["body"] == "Read only. Owner was here."
    # Promoted, the same member writes.
    r = await http.patch(f"/rooms/{room['id']}/members/{viewer.id}", json={"role": "editor"}, headers=owner.headers)
    assert r.status_code == 200
    async with editing(http, room["id"], viewer.token) as doc:
        doc.get("body", type=Text).insert(0, "Editor now. ")
        async with editing(http, room["id"], owner.token) as other:
            await until(lambda: body(other) == "Editor now. Read only. Owner was here.")


async def test_the_document_survives_the_room_closing_and_reopening(http, new_user, community_db, eventually):
    owner = new_user()
    _, room = await _story_room(http, owner, None)  # no story: the stored updates are all there is
    kept = Doc()
    async with editing(http, room["id"], owner.token, kept) as doc:
        for word in ("Kept", " across", " sessions."):
            doc.get("body", type=Text).insert(len(body(doc)), word)
            await asyncio.sleep(0.3)  # apart, so they are stored as separate rows
        assert (await http.get(f"/rooms/{room['id']}", headers=owner.headers)).json()["document"] == {
            "open": True,
            "connections": 1,
        }
        rows = "SELECT count(*) FROM room_doc_updates WHERE room_id = $1"

        async def stored_apart() -> bool:
            return await community_db.fetchval(rows, uuid.UUID(room["id"])) >= 2

        await eventually(stored_apart)
    await eventually(closed(http, owner, room["id"]), timeout=10)
    # Closed: the updates are compacted into one row.
    assert await community_db.fetchval(rows, uuid.UUID(room["id"])) == 1
    # A new client gets the stored document.
    async with editing(http, room["id"], owner.token) as fresh:
        assert body(fresh) == "Kept across sessions."
    await eventually(closed(http, owner, room["id"]), timeout=10)
    # The old client's copy merges with it without duplicating: the same Yjs items, not a re-seed.
    async with editing(http, room["id"], owner.token, kept) as again:
        again.get("body", type=Text).insert(len(body(again)), " And more.")
        async with editing(http, room["id"], owner.token) as check:
            await until(lambda: body(check) == "Kept across sessions. And more.")


async def test_handshake_refused_for_bad_tokens_and_non_members(http, new_user):
    owner, stranger = new_user(), new_user()
    _, room = await _story_room(http, owner, "Private.")
    public = (await http.post("/rooms", json={"name": "open", "visibility": "public"}, headers=owner.headers)).json()
    cases = [
        (room["id"], None, 401),
        (room["id"], "not-a-token", 401),
        (room["id"], "a.b.c", 401),
        (room["id"], stranger.token, 404),  # not a member of an invite-only room
        (public["id"], stranger.token, 404),  # nor of a public one: join first
        (str(uuid.uuid4()), owner.token, 404),
        ("not-a-room", owner.token, 404),
    ]
    for room_id, token, status in cases:
        url = ws_url(http, room_id) + (f"?token={token}" if token else "")
        with pytest.raises(WebSocketUpgradeError) as refused:
            async with aconnect_ws(url, http):
                pass
        assert refused.value.response.status_code == status, (room_id, token)
        # The refusal carries the usual envelope (a raw upgrade request, to read the body).
        r = await http.get(
            f"/rooms/{room_id}/doc",
            params={"token": token} if token else None,
            headers={
                "Connection": "Upgrade",
                "Upgrade": "websocket",
                "Sec-WebSocket-Version": "13",
                "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
            },
        )
        assert r.status_code == status and r.json()["detail"]["code"], r.text
    # A removed member's open connection is closed.
    member = new_user()
    await _member(http, owner, room, member, "editor")
    async with aconnect_ws(ws_url(http, room["id"]) + f"?token={member.token}", http) as ws:
        await ws.receive_bytes()
        r = await http.delete(f"/rooms/{room['id']}/members/{member.id}", headers=owner.headers)
        assert r.status_code == 204
        with anyio.fail_after(5):
            with pytest.raises(WebSocketDisconnect):
                while True:
                    await ws.receive_bytes()


async def test_a_room_removed_by_a_moderator_closes_its_document_and_refuses_new_connections(http, new_user):
    owner = new_user()
    moderator = new_user(extra_claims={"app_metadata": {"provider": "email", "tier": 0, "roles": ["moderator"]}})
    _, room = await _story_room(http, owner, "Reported text.")
    async with aconnect_ws(ws_url(http, room["id"]) + f"?token={owner.token}", http) as ws:
        await ws.receive_bytes()
        r = await http.post(f"/moderation/room/{room['id']}/remove", headers=moderator.headers)
        assert r.status_code == 200, r.text
        with anyio.fail_after(5):
            with pytest.raises(WebSocketDisconnect) as closed_with:
                while True:
                    await ws.receive_bytes()
        assert closed_with.value.code == 4404
    with pytest.raises(WebSocketUpgradeError) as refused:
        async with aconnect_ws(ws_url(http, room["id"]) + f"?token={owner.token}", http):
            pass
    assert refused.value.response.status_code == 404


async def test_concurrent_first_connections_share_one_seeded_document(http, new_user, eventually):
    """The per-room lock: five clients opening a never-opened room at once get one document, seeded
    once, and an edit by any of them reaches all."""
    owner = new_user()
    _, room = await _story_room(http, owner, "Seeded once.")
    docs = [Doc() for _ in range(5)]
    ready = anyio.Event()
    count = 0

    async def connect(doc: Doc) -> None:
        nonlocal count
        async with editing(http, room["id"], owner.token, doc):
            count += 1
            if count == len(docs):
                ready.set()
            await done.wait()

    done = anyio.Event()
    async with anyio.create_task_group() as tg:
        for doc in docs:
            tg.start_soon(connect, doc)
        with anyio.fail_after(30):
            await ready.wait()
        assert [body(d) for d in docs] == ["Seeded once."] * 5
        docs[3].get("body", type=Text).insert(0, "Edited. ")
        await until(lambda: all(body(d) == "Edited. Seeded once." for d in docs))
        done.set()
    await eventually(closed(http, owner, room["id"]), timeout=10)


async def test_handshake_refused_for_a_deleted_users_token(http, new_user, service_env):
    """The WebSocket decodes its token itself: a deleted user's still-valid token is refused there
    too (401 USER_DELETED), as on every HTTP route (shared.tombstones)."""
    from shared.bus import EventPublisher
    from shared.events import EventType, make_event

    owner = new_user()
    _, room = await _story_room(http, owner, "Soon gone.")
    publisher = EventPublisher(service_env["RABBITMQ_URL"], "scenextras.events")
    try:
        await publisher.publish(make_event(EventType.USER_DELETED, owner.id, {"was_guest": False}))
    finally:
        await publisher.close()
    for _ in range(300):  # the service hears the deletion (its HTTP routes refuse the token)
        if (await http.get("/rooms", headers=owner.headers)).status_code == 401:
            break
        await asyncio.sleep(0.05)
    r = await http.get(
        f"/rooms/{room['id']}/doc",
        params={"token": owner.token},
        headers={
            "Connection": "Upgrade",
            "Upgrade": "websocket",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        },
    )
    assert r.status_code == 401 and r.json()["detail"]["code"] == "USER_DELETED", r.text
