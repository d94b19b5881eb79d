"""Flow 4 across the seven running services, over HTTP and WebSocket only (issue 18).

A user chats with a character (Chat), starts a story from that conversation (Community reads it
from Chat with the user's token), walks the wizard (universe checked against Content, characters,
scenario), generates a draft as server-sent events (Payment's `story` quota), edits it under
If-Match, publishes, exports a PDF (its text read back with pypdf), shares a link that opens
without a token, opens a fandom room on the story; a second user joins it with the first user's
referral code (Auth records the referral), both co-edit live (two pycrdt clients over httpx-ws)
and the story gets the merged text; the second user up-votes. The first user gets the
notifications: in the in-app list, on the live stream (and again after `Last-Event-ID`), by email
through the sandbox's SendGrid, by push through the sandbox's Expo; and `/analytics/me` shows the
XP, the first-story achievement and the counters.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io

import anyio
import pytest
import pytest_asyncio
from httpx_ws import aconnect_ws
from pycrdt import Doc, Provider, Text
from pycrdt.websocket.websocket import HttpxWebsocket
from pypdf import PdfReader

from shared import fleet as fleet_manifest
from shared.testing import poll
from tests.e2e.fans import Clients, parse_sse, quota, sign_up, talk
from tests.e2e.fleets import running_fleet

SERVICES = tuple(s.name for s in fleet_manifest.SERVICES)
TOLD = ("room_joined", "referral", "story_milestone", "achievement")  # what the first user hears of
# Exactly these: two achievements (first_chat, first_story), a join, a referral, the first up-vote.
EXPECTED = sorted(("achievement", "achievement", "referral", "room_joined", "story_milestone"))


@pytest.fixture(scope="module")
def fleet(e2e_env, sandbox_handle, infra, tmp_path_factory):
    """All seven services. Community mails through the sandbox's SendGrid (Auth keeps the file
    outbox the sign-ups read their codes from) and saves the room's document every half second."""
    env = {**e2e_env, **sandbox_handle.env(keys=True)}
    community = {
        "EMAIL_BACKEND": "sendgrid",
        "ROOM_DOC_SAVE_SECONDS": "0.5",
        "NOTIFICATION_DELIVERY_POLL_SECONDS": "0.2",
    }
    log_dir = tmp_path_factory.mktemp("fleet-flow4")
    with running_fleet(
        env, sandbox_handle, infra, log_dir, services=SERVICES, service_env={"community": community}
    ) as f:
        yield f


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def http(fleet):
    clients = Clients({name: fleet.url(name) for name in fleet.procs}, timeout=60)
    yield clients
    await clients.aclose()


eventually = functools.partial(poll.eventually, timeout=20.0, interval=0.1)


@contextlib.asynccontextmanager
async def editing(community, room_id: str, token: str):
    """A pycrdt client on the room's document, synchronised before the body runs."""
    url = f"{str(community.base_url).replace('http', 'ws', 1).rstrip('/')}/rooms/{room_id}/doc"
    doc = Doc()
    async with aconnect_ws(url, community, subprotocols=["yjs", f"bearer.{token}"]) as ws:
        async with Provider(doc, HttpxWebsocket(ws, room_id)) as provider:
            with anyio.fail_after(10):
                await provider.synced.wait()
            yield doc


def text_of(doc: Doc) -> str:
    return str(doc.get("body", type=Text))


async def read_stream(community, headers: dict, into: list, last_event_id: str | None = None):
    """The notifications stream, each (id, event, data) appended as it arrives."""
    if last_event_id is not None:
        headers = {**headers, "Last-Event-ID": last_event_id}
    async with community.stream("GET", "/notifications/stream", headers=headers, timeout=None) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        frame: dict = {}
        async for line in r.aiter_lines():
            if not line:
                if "data" in frame:
                    into.append(frame)
                frame = {}
            elif line.startswith("id:"):
                frame["id"] = line[3:].strip()
            elif line.startswith("event:"):
                frame["event"] = line[6:].strip()
            elif line.startswith("data:"):
                frame["data"] = line[5:].strip()


async def test_flow4_chat_story_room_coediting_votes_notifications_analytics(fleet, http, outbox):
    sandbox = fleet.sandbox.control
    author = await sign_up(http, outbox)
    friend = await sign_up(http, outbox)
    device = f"ExponentPushToken[flow4-{author.user_id[:8]}]"

    # The author's phone and preferences: push is on by default; email is opted into for these kinds.
    r = await http.community.post(
        "/notifications/devices", json={"expo_push_token": device, "platform": "ios"}, headers=author.headers
    )
    assert r.status_code == 201, r.text
    r = await http.community.put(
        "/notifications/preferences", json={"email": {k: True for k in TOLD}}, headers=author.headers
    )
    assert r.status_code == 200 and all(r.json()["email"][k] for k in TOLD), r.text

    # The live stream, open from the start.
    live: list[dict] = []
    stream_task = asyncio.create_task(read_stream(http.community, author.headers, live))

    try:
        # 1. Chat with a character.
        r = await talk(http, author, "Where should we hide the plans?", character="Batman", series="The Dark Knight")
        assert r.status_code == 200, r.text
        conversation_id = r.json()["conversation_id"]
        r = await talk(http, author, "And who do we trust?", character="Batman", conversation_id=conversation_id)
        assert r.status_code == 200, r.text

        # 2. A story from that conversation: its messages imported from Chat.
        r = await http.community.post(
            "/stories", json={"from_conversation_id": conversation_id}, headers=author.headers
        )
        assert r.status_code == 201, r.text
        story = r.json()
        sid = story["id"]
        assert story["source"]["conversation_id"] == conversation_id
        assert story["source"]["character"] == "Batman" and story["source"]["message_count"] == 4

        # 3. The wizard: universe (a TMDB title, checked against Content), characters, scenario.
        r = await http.community.put(
            f"/stories/{sid}/universe", json={"tmdb": {"type": "movie", "id": 155}}, headers=author.headers
        )
        assert r.status_code == 200, r.text
        assert r.json()["universe"]["name"] == "The Dark Knight" and r.json()["step"] == "characters"
        r = await http.community.put(
            f"/stories/{sid}/characters",
            json={"characters": [{"name": "Batman", "series": "The Dark Knight"}, {"name": "Alfred"}]},
            headers=author.headers,
        )
        assert r.status_code == 200 and r.json()["step"] == "scenario", r.text
        r = await http.community.put(
            f"/stories/{sid}/scenario",
            json={"setting": "Gotham rooftops", "tone": "noir", "themes": ["trust"]},
            headers=author.headers,
        )
        assert r.status_code == 200 and r.json()["step"] == "generation", r.text

        # 4. The draft, streamed.
        r = await http.community.post(f"/stories/{sid}/generate", json={"length": "short"}, headers=author.headers)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream"), r.text
        frames = parse_sse(r.text)
        kinds = [k for k, _ in frames]
        assert "token" in kinds and kinds[-1] == "done" and kinds.count("done") == 1, kinds
        streamed = "".join(d["text"] for k, d in frames if k == "token")
        drafted = frames[-1][1]["story"]
        assert drafted["body"] and drafted["body"] in streamed

        # 5. The edit: stale If-Match refused, the current one accepted.
        edited = drafted["body"] + "\n\nThe signal burned over Gotham."
        r = await http.community.patch(
            f"/stories/{sid}",
            json={"title": "Gotham Trust", "body": edited},
            headers={**author.headers, "If-Match": f'"{drafted["version"] - 1}"'},
        )
        assert r.status_code == 412 and r.json()["detail"]["code"] == "VERSION_CONFLICT", r.text
        r = await http.community.patch(
            f"/stories/{sid}",
            json={"title": "Gotham Trust", "body": edited},
            headers={**author.headers, "If-Match": f'"{drafted["version"]}"'},
        )
        assert r.status_code == 200 and r.json()["version"] == drafted["version"] + 1, r.text

        # 6. Publish, export as PDF (its text read back), share a link that opens without a token.
        r = await http.community.post(f"/stories/{sid}/publish", json={"visibility": "public"}, headers=author.headers)
        assert r.status_code == 200 and r.json()["status"] == "published", r.text
        r = await http.community.get(f"/stories/{sid}/export", params={"format": "pdf"}, headers=author.headers)
        assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
        assert r.content.startswith(b"%PDF-") and r.content.rstrip().endswith(b"%%EOF")
        pdf_text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(r.content)).pages)
        assert "Gotham Trust" in pdf_text and "The signal burned over Gotham." in " ".join(pdf_text.split())
        r = await http.community.post(f"/stories/{sid}/share", headers=author.headers)
        assert r.status_code == 200, r.text
        token = r.json()["token"]
        r = await http.community.get(f"/shared/stories/{token}")  # no Authorization header
        assert r.status_code == 200 and r.json()["title"] == "Gotham Trust" and r.json()["body"] == edited

        # 7. A fandom room on the story; the friend joins with the author's referral code.
        r = await http.community.post(
            "/rooms", json={"name": "Gotham writers", "story_id": sid, "visibility": "invite"}, headers=author.headers
        )
        assert r.status_code == 201, r.text
        room = r.json()
        r = await http.community.post(
            "/rooms/join",
            json={"invite_code": room["invite_code"], "referral_code": author.referral_code},
            headers=friend.headers,
        )
        assert r.status_code == 200, r.text
        assert r.json()["joined"] is True and r.json()["referral"]["referrer_id"] == author.user_id
        r = await http.auth.get("/users/me", headers=friend.headers)
        assert r.status_code == 200 and r.json()["referred_by"] == author.user_id, r.text  # Auth recorded it
        assert (await http.auth.get("/referrals/me", headers=author.headers)).json()["referral_count"] == 1

        # Payment's referral bonuses (10 to the referrer, 5 to the referred), the author's one
        # conversation spent from the 5 regular.
        async def bonuses():
            a, b = await quota(http, author), await quota(http, friend)
            return (a["quotas"]["regular"]["remaining"], b["quotas"]["regular"]["remaining"]) == (14, 10)

        await eventually(bonuses, what="the referral bonuses")
        r = await http.community.patch(
            f"/rooms/{room['id']}/members/{friend.user_id}", json={"role": "editor"}, headers=author.headers
        )
        assert r.status_code == 200, r.text

        # 8. Co-editing live: both type at once, both see the merged text, the story gets it.
        async with (
            editing(http.community, room["id"], author.access_token) as mine,
            editing(http.community, room["id"], friend.access_token) as theirs,
        ):
            await eventually(lambda: text_of(mine) == text_of(theirs) == edited, what="the seeded document")

            async def type_into(doc: Doc, words: list[str], at_start: bool):
                body = doc.get("body", type=Text)
                for word in words:
                    body.insert(0 if at_start else len(body), word)
                    await asyncio.sleep(0.01)

            async with anyio.create_task_group() as tg:
                tg.start_soon(type_into, mine, ["Prologue. ", "Night. "], True)
                tg.start_soon(type_into, theirs, [" Epilogue.", " Dawn."], False)
            merged = "Night. Prologue. " + edited + " Epilogue. Dawn."
            await eventually(lambda: text_of(mine) == text_of(theirs) == merged, what="convergence")

            async def saved():
                r = await http.community.get(f"/stories/{sid}", headers=author.headers)
                return r.json()["body"] == merged

            await eventually(saved, what="the merged text saved to the story")
        versions = (await http.community.get(f"/stories/{sid}/versions", headers=author.headers)).json()["versions"]
        assert versions[0]["change"] == "collab"

        # 9. The friend up-votes the story.
        r = await http.community.put(
            "/votes", json={"target_type": "story", "target_id": sid, "value": 1}, headers=friend.headers
        )
        assert r.status_code == 200, r.text
        story = (await http.community.get(f"/stories/{sid}", headers=friend.headers)).json()
        assert (story["up"], story["score"], story["my_vote"]) == (1, 1, 1)

        # 10. The author's notifications: in-app...
        async def notified():
            r = await http.community.get("/notifications", headers=author.headers)
            assert r.status_code == 200, r.text
            found = r.json()["notifications"]
            return found if sorted(n["kind"] for n in found) == EXPECTED else None

        listed = await eventually(notified, timeout=30, what="the in-app notifications")
        by_kind = {n["kind"]: n for n in listed}
        assert by_kind["room_joined"]["data"]["room_id"] == room["id"]
        assert by_kind["story_milestone"]["data"]["story_id"] == sid
        assert by_kind["referral"]["title"] == "Your referral just joined"
        achievements = sorted(n["data"]["code"] for n in listed if n["kind"] == "achievement")
        assert achievements == ["first_chat", "first_story"], achievements
        assert len({n["id"] for n in listed}) == len(listed)
        r = await http.community.get("/notifications/unread-count", headers=author.headers)
        assert r.json()["unread"] == len(listed)
        theirs = (await http.community.get("/notifications", headers=friend.headers)).json()["notifications"]
        assert not {"room_joined", "referral", "story_milestone"} & {n["kind"] for n in theirs}

        # ...live, each once, in order...
        seqs = sorted(n["seq"] for n in listed)
        await eventually(lambda: len(live) >= len(listed), what="the live stream")
        assert len(live) == len(listed), live
        assert [int(f["id"]) for f in live] == seqs and {f["event"] for f in live} == {"notification"}
    finally:
        stream_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stream_task

    # ...and again after a reconnection with Last-Event-ID: only what came after it.
    resumed: list[dict] = []
    resume_task = asyncio.create_task(read_stream(http.community, author.headers, resumed, str(seqs[0])))
    try:
        # The backlog comes first, in one go: had Last-Event-ID been ignored, seqs[0] would lead.
        await eventually(lambda: len(resumed) >= len(seqs) - 1, what="the resumed stream")
        assert [int(f["id"]) for f in resumed] == seqs[1:]
    finally:
        resume_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await resume_task

    # Email through SendGrid (the kinds opted into) and push through Expo (the registered device).
    emails = await eventually(
        lambda: (found := sandbox.emails(author.email)) and len(found) >= len(listed) and found,
        what="the emails",
    )
    assert len(emails) == len(listed), [e["subject"] for e in emails]
    subjects = {e["subject"] for e in emails}
    assert {n["title"] for n in listed} <= subjects, (subjects, [n["title"] for n in listed])
    pushes = await eventually(
        lambda: (found := sandbox.expo_messages(device)) and len(found) >= len(listed) and found, what="the pushes"
    )
    assert sorted(p["data"]["kind"] for p in pushes) == sorted(n["kind"] for n in listed)
    assert sandbox.emails(friend.email) == []  # the friend opted into no email

    # The analytics: the story, the messages, the conversation, XP and the first-story achievement.
    async def counted():
        r = await http.analytics.get("/analytics/me", headers=author.headers)
        assert r.status_code == 200, r.text
        me = r.json()
        return me if me["stories"] >= 1 and me["messages"] >= 2 and me["conversations"] >= 1 else None

    me = await eventually(counted, timeout=30, what="the analytics counters")
    assert me["xp"] > 0 and me["level"] >= 1
    r = await http.analytics.get("/analytics/achievements", headers=author.headers)
    assert r.status_code == 200, r.text
    first_story = next(a for a in r.json()["achievements"] if a["code"] == "first_story")
    assert first_story["unlocked"], first_story
