"""Media's image providers (media_service/providers.py, through the official SDKs) over the answers
OpenAI and Replicate publish, replayed by a small local server - not the sandbox's reading of them.

OpenAI: the "Generate image" example of its OpenAPI document (tests/fixtures/providers/openai),
as published (its image is OpenAI's placeholder "...": no usable image, so the chain moves on),
and with a real PNG in place of the placeholder. Replicate: the prediction its OpenAPI document
shows for `GET /predictions/{id}` (tests/fixtures/providers/replicate) as published (a text
model's output: no image) and with a PNG data URI as its output, answered at once or after
polling. Google publishes no example answer we could replay (fixtures README).
"""

from __future__ import annotations

import base64
import copy
import io
import json
import re
from pathlib import Path

import openai
import pytest
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from media_service.providers import OpenAIImagesProvider, ProviderChain, ProvidersUnavailable, ReplicateProvider
from shared.testing.servers import ThreadedServer

FIXTURES = Path(__file__).parents[1] / "fixtures/providers"
OPENAI_DOC = json.loads((FIXTURES / "openai/openapi.trimmed.json").read_text())
IMAGES_RESPONSE = json.loads(
    next(
        e["response"]
        for e in OPENAI_DOC["paths"]["/images/generations"]["post"]["x-oaiMeta"]["examples"]
        if e["title"] == "Generate image"
    )
)
REPLICATE_DOC = json.loads((FIXTURES / "replicate/openapi.json").read_text())
PREDICTION = json.loads(
    re.search(r"```json\n(.*?)```", REPLICATE_DOC["paths"]["/predictions/{prediction_id}"]["get"]["description"], re.S)[
        1
    ]
)


def png_bytes() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (32, 24), (10, 120, 200)).save(out, "PNG")
    return out.getvalue()


PNG = png_bytes()


def replay(answers: dict[str, list[dict]], log: list[tuple[str, str]]) -> Starlette:
    """Each route answers its queued bodies in turn (the last one repeats)."""

    def handler(name: str, status: int):
        async def handle(request: Request):
            log.append((name, request.url.path))
            queue = answers[name]
            return JSONResponse(queue.pop(0) if len(queue) > 1 else queue[0], status)

        return handle

    return Starlette(
        routes=[
            Route("/v1/images/generations", handler("openai", 200), methods=["POST"]),
            Route("/v1/models/{owner}/{name}/predictions", handler("replicate_create", 201), methods=["POST"]),
            Route("/v1/predictions/{pid}", handler("replicate_get", 200), methods=["GET"]),
        ]
    )


@pytest.fixture
def serve():
    servers = []

    def start(answers: dict[str, list[dict]], log: list) -> str:
        server = ThreadedServer(replay(answers, log)).start()
        servers.append(server)
        return server.url

    yield start
    for server in servers:
        server.stop()


def openai_provider(url: str) -> OpenAIImagesProvider:
    client = openai.AsyncOpenAI(api_key="sk-test", base_url=f"{url}/v1", max_retries=0)
    return OpenAIImagesProvider(client, "gpt-image-1")


def replicate_provider(url: str) -> ReplicateProvider:
    return ReplicateProvider("r8_test", url, "black-forest-labs/flux-schnell", 10, 0.05)


# ------------------------------------------------------------------------------------------- OpenAI


async def test_openais_documented_answer_with_an_image_is_read(serve):
    answer = copy.deepcopy(IMAGES_RESPONSE)
    answer["data"][0]["b64_json"] = base64.b64encode(PNG).decode()  # the placeholder "...", filled
    images = await openai_provider(serve({"openai": [answer]}, [])).generate("an otter", count=1, aspect_ratio="1:1")
    assert [i.data for i in images] == [PNG]


async def test_openais_documented_placeholder_is_no_image_and_the_chain_moves_on(serve):
    log: list = []
    url = serve({"openai": [IMAGES_RESPONSE]}, log)
    assert IMAGES_RESPONSE["data"][0]["b64_json"] == "..."
    assert await openai_provider(url).generate("an otter", count=1, aspect_ratio="1:1") == []
    chain = ProviderChain({"openai": openai_provider(url)}, timeout_seconds=10)
    with pytest.raises(ProvidersUnavailable) as failed:
        await chain.generate("an otter", count=1, aspect_ratio="1:1", preferred=None)
    assert failed.value.attempts == [{"provider": "openai", "model": "gpt-image-1", "error": "NoImages"}]


# ---------------------------------------------------------------------------------------- Replicate


def with_image(prediction: dict, **changes) -> dict:
    out = copy.deepcopy(prediction)
    out.update(output=["data:image/png;base64," + base64.b64encode(PNG).decode()], **changes)
    return out


async def test_replicates_documented_prediction_with_an_image_output_is_read(serve):
    log: list = []
    url = serve({"replicate_create": [with_image(PREDICTION)]}, log)
    images = await replicate_provider(url).generate("a kite", count=1, aspect_ratio="16:9")
    assert [i.data for i in images] == [PNG]
    assert log == [("replicate_create", "/v1/models/black-forest-labs/flux-schnell/predictions")]


async def test_replicates_documented_prediction_polled_until_it_succeeds(serve):
    log: list = []
    starting = {**copy.deepcopy(PREDICTION), "status": "starting", "output": None, "completed_at": None}
    processing = {**starting, "status": "processing"}
    url = serve({"replicate_create": [starting], "replicate_get": [processing, with_image(PREDICTION)]}, log)
    images = await replicate_provider(url).generate("a kite", count=1, aspect_ratio="16:9")
    assert [i.data for i in images] == [PNG]
    assert [name for name, _ in log] == ["replicate_create", "replicate_get", "replicate_get"]
    assert log[-1][1] == f"/v1/predictions/{PREDICTION['id']}"


async def test_replicates_documented_text_output_is_no_image(serve):
    assert PREDICTION["output"] == "hello Alice"
    url = serve({"replicate_create": [PREDICTION]}, [])
    assert await replicate_provider(url).generate("a kite", count=1, aspect_ratio="1:1") == []


async def test_an_aborted_prediction_is_a_failed_attempt(serve):
    """`aborted` is in Replicate's document but not among replicate 1.0.7's statuses: the SDK's
    model refuses the answer (ValidationError), and the chain counts it as this provider failing
    (then tries the next), rather than polling on."""
    assert (
        "aborted"
        in REPLICATE_DOC["components"]["schemas"]["schemas_prediction_response"]["properties"]["status"]["enum"]
    )
    starting = {**copy.deepcopy(PREDICTION), "status": "starting", "output": None}
    url = serve({"replicate_create": [starting], "replicate_get": [{**starting, "status": "aborted"}]}, [])
    chain = ProviderChain({"replicate": replicate_provider(url)}, timeout_seconds=10)
    with pytest.raises(ProvidersUnavailable) as failed:
        await chain.generate("a kite", count=1, aspect_ratio="1:1", preferred=None)
    assert failed.value.attempts[0]["error"] == "ValidationError"
