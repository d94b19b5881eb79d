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
    await client.put(
        f"/stories/{sid}/universe",
        json={"custom": {"name": "Skyhold", "description": "Sky city."}},
        headers=user.headers,
    )
    r = await client.put(
        f"/stories/{sid}/characters", json={"characters": [{"name": "Aria", "series": "Skyhold"}]}, headers=user.headers
    )
    assert r.status_code == 200, r.text
    return sid


async def test_generation_streams_saves_a_version_and_spends_one_story_quota(client, new_user):
    user = new_user()  # free tier: one story a period
    sid = await _ready_draft(client, user)
    r = await client.post(
        f"/stories/{sid}/generate", json={"length": "short", "instructions": "A happy ending."}, headers=user.headers
    )
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


async def test_a_client_leaving_mid_stream_releases_the_quota(
    community_env, service_env, new_user, sandbox, eventually
):
    import asyncio

    import asyncpg
    import uvicorn

    from community_service.main import build_app
    from community_service.settings import Settings
    from shared.testing.env import patched_environ
    from shared.testing.processes import free_port

    with patched_environ({**service_env, **community_env}):
        app = build_app(Settings())
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    core = await asyncpg.connect(service_env["DATABASE_URL"])
    control = httpx.AsyncClient(base_url=sandbox.base_url)
    try:
        while not server.started:
            assert not task.done(), task.result()
            await asyncio.sleep(0.05)
        await control.post("/_sandbox/latency", json={"provider": "*", "per_token_seconds": 0.2})
        user = new_user()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            sid = await _ready_draft(client, user)
            async with client.stream("POST", f"/stories/{sid}/generate", json={}, headers=user.headers) as r:
                assert r.status_code == 200
                async for line in r.aiter_lines():
                    if line.startswith("event: token"):
                        break  # leaving the block closes the connection mid-stream

            async def released():
                return (
                    await core.fetchval(
                        "SELECT count(*) FROM quota_reservations WHERE user_id = $1 AND state = 'released'", user.id
                    )
                    == 1
                )

            await eventually(released, timeout=15)
            assert (
                await core.fetchval(
                    "SELECT count(*) FROM quota_reservations WHERE user_id = $1 AND state = 'held'", user.id
                )
                == 0
            )
            assert (await client.get(f"/stories/{sid}", headers=user.headers)).json()["version"] == 3  # nothing saved
    finally:
        await control.delete("/_sandbox/latency")
        await control.aclose()
        await core.close()
        server.should_exit = True
        await asyncio.wait_for(task, 30)
