"""PUT /votes is answered by a lean route ahead of FastAPI's (routers/votes.py); what it is not sure
of goes on to FastAPI's route. The answers must not depend on which one answered: each request is
sent to /votes and to the same route under the legacy prefix /api/story, which only FastAPI's
route serves, and the two answers compared."""

from __future__ import annotations

import json
import uuid

from community_service.routers import votes as votes_router


async def _published(client, user) -> str:
    sid = (await client.post("/stories", json={}, headers=user.headers)).json()["id"]
    r = await client.patch(
        f"/stories/{sid}", json={"title": "Lean", "body": "A story."}, headers={**user.headers, "If-Match": '"1"'}
    )
    assert r.status_code == 200, r.text
    r = await client.post(f"/stories/{sid}/publish", json={"visibility": "public"}, headers=user.headers)
    assert r.status_code == 200, r.text
    return sid


async def test_lean_and_fastapi_votes_answer_alike(client, new_user):
    author = new_user()
    sid = await _published(client, author)
    draft = (await client.post("/stories", json={}, headers=author.headers)).json()["id"]
    ok = {"target_type": "story", "target_id": sid, "value": 1}
    good, plain = json.dumps(ok), "application/json"
    # (what, token: the voter's / none / a bad one, Content-Type, body)
    cases = [
        ("no token", "none", plain, good),
        ("bad token", "bad", plain, good),
        ("invalid JSON", "user", plain, "{"),
        ("invalid JSON, no token", "none", plain, "{"),
        ("not UTF-8", "user", plain, b'{"target_type": "\xff"}'),
        ("empty body", "user", plain, ""),
        ("a list", "user", plain, "[]"),
        ("nested too deep", "user", plain, "[" * 100_000 + "]" * 100_000),
        ("missing value", "user", plain, json.dumps({"target_type": "story", "target_id": sid})),
        ("extra field", "user", plain, json.dumps({**ok, "weight": 2})),
        ("value 0", "user", plain, json.dumps({**ok, "value": 0})),
        ("value 2", "user", plain, json.dumps({**ok, "value": 2})),
        ("value '1'", "user", plain, json.dumps({**ok, "value": "1"})),
        ("value true", "user", plain, json.dumps({**ok, "value": True})),
        ("target type post", "user", plain, json.dumps({**ok, "target_type": "post"})),
        ("target id too long", "user", plain, json.dumps({**ok, "target_id": "x" * 65})),
        ("bad body, no token", "none", plain, json.dumps({**ok, "value": 2})),
        ("unknown story", "user", plain, json.dumps({**ok, "target_id": str(uuid.uuid4())})),
        ("malformed id", "user", plain, json.dumps({**ok, "target_id": "nope"})),
        ("another user's draft", "user", plain, json.dumps({**ok, "target_id": draft})),
        ("huge body", "user", plain, json.dumps({**ok, "pad": "x" * 2_000_000})),
        ("text/plain", "user", "text/plain", good),
        ("a form", "user", "application/x-www-form-urlencoded", good),
        ("no content type", "user", None, good),
    ]
    for name, token, content_type, body in cases:
        voter = new_user()
        headers = {"none": {}, "bad": {"Authorization": "Bearer not-a-token"}, "user": voter.headers}[token]
        headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
        if content_type:
            headers["Content-Type"] = content_type
        answers = []
        for path in ("/votes", "/api/story/votes"):
            r = await client.put(path, content=body, headers=headers)
            answers.append((r.status_code, r.json()))
        assert answers[0] == answers[1], name
        if name not in ("value true", "no content type"):  # what FastAPI's route accepts, both accept
            assert answers[0][0] >= 400, (name, answers)

    # Votes that count, through each route: the same answer shape, one more vote each.
    sid = await _published(client, author)
    ok = {"target_type": "story", "target_id": sid, "value": 1}
    for n, (path, content_type) in enumerate(
        (
            ("/votes", "application/json"),
            ("/api/story/votes", "application/json"),
            ("/votes", "application/json; charset=utf-8"),
        ),
        start=1,
    ):
        voter = new_user()
        r = await client.put(path, content=json.dumps(ok), headers={**voter.headers, "Content-Type": content_type})
        assert r.status_code == 200, r.text
        assert r.json() == {"target_type": "story", "target_id": sid, "score": n, "up": n, "down": 0, "my_vote": 1}


async def _asgi_put(app, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict]:
    """PUT through the app's ASGI interface, keeping the scope to see which route answered."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "PUT",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        + [(b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 40000),
        "server": ("testserver", 80),
    }
    sent = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive():
        return sent.pop() if sent else {"type": "http.disconnect"}

    status = []

    async def send(message):
        if message["type"] == "http.response.start":
            status.append(message["status"])

    await app(scope, receive, send)
    return status[0], scope


async def test_the_lean_route_answers_valid_votes_and_hands_the_rest_to_fastapi(client, new_user):
    author, voter = new_user(), new_user()
    sid = await _published(client, author)
    headers = {**voter.headers, "Content-Type": "application/json"}
    body = json.dumps({"target_type": "story", "target_id": sid, "value": -1}).encode()
    status, scope = await _asgi_put(client.app, "/votes", headers, body)
    assert status == 200
    assert votes_router._REDISPATCHED not in scope and scope.get("route") is None  # no FastAPI route ran
    status, scope = await _asgi_put(client.app, "/votes", headers, b"{")
    assert status == 400  # INVALID_JSON, as FastAPI's route answers it
    assert scope[votes_router._REDISPATCHED] and scope["route"].endpoint is votes_router.put_vote
    r = await client.get(f"/stories/{sid}", headers=voter.headers)
    assert (r.json()["score"], r.json()["down"], r.json()["my_vote"]) == (-1, 1, -1)
