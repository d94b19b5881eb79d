"""shared/llm/moderation.py over the answers OpenAI publishes for `POST /moderations` (the
examples of its OpenAPI document, tests/fixtures/providers/openai), replayed by a small local
server through the official SDK: the current omni-moderation answer (image and text) and the older
text-moderation-007 one, which lacks the categories added since (illicit, illicit/violent)."""

from __future__ import annotations

import json
from pathlib import Path

import openai
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from shared.llm.moderation import ModerationUnavailable, moderate
from shared.testing.servers import ThreadedServer

DOC = json.loads((Path(__file__).parents[1] / "fixtures/providers/openai/openapi.trimmed.json").read_text())
EXAMPLES = {e["title"]: e["response"] for e in DOC["paths"]["/moderations"]["post"]["x-oaiMeta"]["examples"]}


@pytest.fixture
def replay():
    servers = []

    def start(body: str, status: int = 200) -> openai.AsyncOpenAI:
        async def moderations(request: Request) -> Response:
            return Response(body, status, media_type="application/json")  # OpenAI's bytes, as published

        server = ThreadedServer(Starlette(routes=[Route("/v1/moderations", moderations, methods=["POST"])])).start()
        servers.append(server)
        return openai.AsyncOpenAI(api_key="sk-test", base_url=f"{server.url}/v1", max_retries=0)

    yield start
    for server in servers:
        server.stop()


@pytest.mark.parametrize("title", ["Image and text", "Single string"])
async def test_documented_answers_become_a_moderation(replay, title):
    published = json.loads(EXAMPLES[title])["results"][0]
    result = await moderate(replay(EXAMPLES[title]), "some text", "omni-moderation-latest", 5)
    assert result.flagged is published["flagged"] is True
    assert result.model == json.loads(EXAMPLES[title])["model"]
    assert result.categories == sorted(name for name, on in published["categories"].items() if on)
    assert result.scores == pytest.approx(published["category_scores"])


async def test_an_error_in_openais_error_shape_is_unavailable_not_a_pass(replay):
    error = json.dumps(
        {"error": {"message": "Invalid input", "type": "invalid_request_error", "param": None, "code": None}}
    )
    with pytest.raises(ModerationUnavailable):
        await moderate(replay(error, 400), "some text", "omni-moderation-latest", 5)
