"""Step 4: generation streamed through shared/llm (the sandbox's providers), the `story` quota
reserved before and settled after (released when the model fails)."""
from __future__ import annotations

import httpx
import orjson


def events(text: str) -> list[tuple[str, dict]]:
    out = []
    for block in text.split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if line and not line.startswith(":"))
        if "event" in lines:
            out.append((lines["event"], orjson.loads(lines["data"])))
    return out


async def _ready_draft(client, user) -> str:
    sid = (await client.post("/stories", json={}, headers=user.headers)).json()["id"]
    await client.put(f"/stories/{sid}/universe", json={"custom": {"name": "Skyhold", "description": "Sky city."}},
                     headers=user.headers)
    r = await client.put(f"/stories/{sid}/characters", json={"characters": [{"name": "Aria", "series": "Skyhold"}]},
                         headers=user.headers)
    assert r.status_code == 200, r.text
    return sid


async def test_generation_streams_saves_a_version_and_spends_one_story_quota(client, new_user):
    user = new_user()  # free tier: one story a period
    sid = await _ready_draft(client, user)
    r = await client.post(f"/stories/{sid}/generate", json={"length": "short", "instructions": "A happy ending."},
                          headers=user.headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/event-stream")
    frames = events(r.text)
    kinds = [k for k, _ in frames]
    assert kinds[-1] == "done" and kinds.count("done") == 1 and "token" in kinds
    streamed = "".join(d["text"] for k, d in frames if k == "token")
    story = frames[-1][1]["story"]
    assert story["body"] and story["body"] in streamed and story["version"] == 4
    r = await client.get(f"/stories/{sid}/versions", headers=user.headers)
    assert r.json()["versions"][0]["change"] == "generation"
    # The quota was spent: a second generation is refused before anything streams.
    r = await client.post(f"/stories/{sid}/generate", json={}, headers=user.headers)
    assert r.status_code == 402 and r.json()["detail"]["code"] == "INSUFFICIENT_QUOTA"
    assert (await client.get(f"/stories/{sid}", headers=user.headers)).json()["version"] == 4


async def test_a_failed_generation_gives_the_quota_back(client, new_user, sandbox):
    user = new_user()
    sid = await _ready_draft(client, user)
    async with httpx.AsyncClient(base_url=sandbox.base_url) as control:
        await control.post("/_sandbox/faults", json={"provider": "*", "status": 503, "count": None})
        try:
            r = await client.post(f"/stories/{sid}/generate", json={}, headers=user.headers)
        finally:
            await control.delete("/_sandbox/faults")
    assert r.status_code == 200
    assert events(r.text)[-1] == ("error", {"code": "LLM_UNAVAILABLE", "message": events(r.text)[-1][1]["message"]})
    assert (await client.get(f"/stories/{sid}", headers=user.headers)).json()["version"] == 3
    # Released: the one story of the period is still there.
    r = await client.post(f"/stories/{sid}/generate", json={"length": "short"}, headers=user.headers)
    assert r.status_code == 200 and events(r.text)[-1][0] == "done"


async def test_generation_needs_the_callers_story_with_characters(client, new_user):
    user = new_user()
    sid = (await client.post("/stories", json={}, headers=user.headers)).json()["id"]
    r = await client.post(f"/stories/{sid}/generate", json={}, headers=user.headers)
    assert r.status_code == 409 and r.json()["detail"]["code"] == "STORY_INCOMPLETE"
    r = await client.post(f"/stories/{sid}/generate", json={}, headers=new_user().headers)
    assert r.status_code == 404
    r = await client.post(f"/stories/{sid}/generate", json={"length": "epic"}, headers=user.headers)
    assert r.status_code == 422
