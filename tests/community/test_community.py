"""The community service as it is today (docs/community.md). Its own tests go beside this one."""

from shared.testing.checks import assert_healthy


async def test_community_starts_and_is_ready(client):
    await assert_healthy(client, "community")


async def test_every_route_documents_its_error_statuses(client):
    """Each route lists (documented(...)) the statuses it can answer: 401 and 422 everywhere but the
    token-less share reader, plus its own codes."""
    spec = (await client.get("/openapi.json")).json()
    routes = {
        (path, method): op
        for path, ops in spec["paths"].items()
        for method, op in ops.items()
        if not path.startswith("/health")
    }
    assert len(routes) >= 30
    for (path, method), op in routes.items():
        statuses = set(op["responses"])
        if path != "/shared/stories/{token}":
            assert {"401", "422"} <= statuses, (method, path, statuses)
        assert any(s.startswith("4") or s.startswith("5") for s in statuses), (method, path)
    assert "412" in routes[("/stories/{story_id}", "patch")]["responses"]
    assert "428" in routes[("/stories/{story_id}", "patch")]["responses"]
    assert "VERSION_CONFLICT" in routes[("/stories/{story_id}", "patch")]["responses"]["412"]["description"]
    assert "CONTENT_FLAGGED" in routes[("/stories/{story_id}/publish", "post")]["responses"]["422"]["description"]
