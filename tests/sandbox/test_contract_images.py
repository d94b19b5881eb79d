"""Contract: the sandbox's image generation and moderation answers against what the providers publish.

OpenAI: its OpenAPI document (tests/fixtures/providers/openai, extended to `/images/generations` and
`/moderations`): the documented example requests are accepted, and answers validate against the
schemas; the documented image+text moderation example fixes which categories apply to images.
Our vision messages (shared/llm/messages.py) validate against the chat request schema.
Replicate: its OpenAPI document (tests/fixtures/providers/replicate): the documented prediction and
every prediction the sandbox answers (waited for, starting, polled, failed) validate against
`schemas_prediction_response`, and carry the documented example's keys.
Google publishes no schema for these answers that we could fetch (README there); Gemini's answer is
held against google-genai's own response model, closed (an invented field is drift).
"""

from __future__ import annotations

import base64
import copy
import json
import re

import httpx
import jsonschema_rs
import pytest
from google.genai import types as genai_types

from sandbox.testing import DUMMY_KEYS
from shared.llm.messages import ImageInput, Turn, openai_messages
from tests.sandbox.published import closed, curl_body, errors, load, nullable_as_null_type, openapi_validator

OPENAI = load("openai/openapi.trimmed.json")
REPLICATE = load("replicate/openapi.json")
OPENAI_AUTH = {"Authorization": f"Bearer {DUMMY_KEYS['OPENAI_API_KEY']}"}
REPLICATE_AUTH = {"Authorization": f"Bearer {DUMMY_KEYS['REPLICATE_API_TOKEN']}"}


def documented(path: str) -> dict[str, dict]:
    """title -> {"request": body, "response": body} of a path's JSON examples (x-oaiMeta)."""
    out = {}
    for example in OPENAI["paths"][path]["post"]["x-oaiMeta"]["examples"]:
        response = example["response"]
        if response.lstrip().startswith("{"):
            out[example["title"]] = {"request": curl_body(example["request"]["curl"]), "response": json.loads(response)}
    return out


IMAGES = documented("/images/generations")
MODERATIONS = documented("/moderations")


def replicate_validator():
    components = nullable_as_null_type(REPLICATE["components"])
    # Replicate's `version` is oneOf(any string, "hidden"): "hidden" matches both, so read as anyOf.
    version = components["schemas"]["schemas_prediction_response"]["properties"]["version"]
    version["anyOf"] = version.pop("oneOf")
    return openapi_validator(REPLICATE, "schemas_prediction_response", components=components)


PREDICTION = replicate_validator()
# The documented answer of `GET /predictions/{id}` (in the operation's description).
DOCUMENTED_PREDICTION = json.loads(
    re.search(r"```json\n(.*?)```", REPLICATE["paths"]["/predictions/{prediction_id}"]["get"]["description"], re.S)[1]
)


@pytest.fixture
def http(sandbox):
    with httpx.Client(base_url=sandbox.base_url, timeout=30) as client:
        yield client


# ------------------------------------------------------------------------------------ OpenAI images


def test_openais_documented_image_and_moderation_examples_fit_its_schemas():
    assert IMAGES and MODERATIONS
    for example in IMAGES.values():
        assert errors(openapi_validator(OPENAI, "CreateImageRequest"), example["request"]) == []
        assert errors(openapi_validator(OPENAI, "ImagesResponse"), example["response"]) == []
    for example in MODERATIONS.values():
        assert errors(openapi_validator(OPENAI, "CreateModerationRequest"), example["request"]) == []
    current = MODERATIONS["Image and text"]["response"]  # omni-moderation-latest
    assert errors(openapi_validator(OPENAI, "CreateModerationResponse"), current) == []
    # OpenAI's other example is an answer of the retired text-moderation-007: it lacks what the
    # schema now requires (the illicit categories, category_applied_input_types). Known, and our
    # parsing is held to it too (tests/shared/test_published_moderation.py).
    old = errors(openapi_validator(OPENAI, "CreateModerationResponse"), MODERATIONS["Single string"]["response"])
    assert old and all("illicit" in e or "category_applied_input_types" in e for e in old)


def test_sandbox_answers_the_documented_image_request_in_openais_schema(http):
    (example,) = IMAGES.values()
    r = http.post("/openai/v1/images/generations", headers=OPENAI_AUTH, json=example["request"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert errors(openapi_validator(OPENAI, "ImagesResponse"), body) == []
    assert set(example["response"]) <= set(body)  # created, data, usage, as documented
    assert len(body["data"]) == example["request"]["n"]
    assert base64.b64decode(body["data"][0]["b64_json"]).startswith(b"\x89PNG")


def test_sandbox_image_variants_and_errors_fit_openais_schema(http):
    dalle = http.post(
        "/openai/v1/images/generations",
        headers=OPENAI_AUTH,
        json={"model": "dall-e-3", "prompt": "a lighthouse", "response_format": "b64_json", "size": "1792x1024"},
    )
    assert dalle.status_code == 200
    assert errors(openapi_validator(OPENAI, "ImagesResponse"), dalle.json()) == []
    for bad, status in (({"model": "gpt-image-1"}, 400), ({"model": "not-an-image-model", "prompt": "x"}, 404)):
        r = http.post("/openai/v1/images/generations", headers=OPENAI_AUTH, json=bad)
        assert r.status_code == status
        assert errors(openapi_validator(OPENAI, "ErrorResponse"), r.json()) == []


# -------------------------------------------------------------------------------- OpenAI moderation


@pytest.mark.parametrize("title", sorted(MODERATIONS))
def test_sandbox_answers_the_documented_moderation_requests_in_openais_schema(http, title):
    request = MODERATIONS[title]["request"]
    r = http.post("/openai/v1/moderations", headers=OPENAI_AUTH, json=request)
    assert r.status_code == 200, r.text
    body = r.json()
    assert errors(openapi_validator(OPENAI, "CreateModerationResponse"), body) == []
    documented = MODERATIONS[title]["response"]["results"][0]
    assert set(documented) <= set(body["results"][0])
    assert set(documented["categories"]) <= set(body["results"][0]["categories"])


def test_sandbox_applies_categories_to_images_as_openai_documents(http):
    """Which categories the real endpoint scores on images: OpenAI's image+text example says."""
    documented = MODERATIONS["Image and text"]
    r = http.post("/openai/v1/moderations", headers=OPENAI_AUTH, json=documented["request"])
    assert (
        r.json()["results"][0]["category_applied_input_types"]
        == documented["response"]["results"][0]["category_applied_input_types"]
    )


# ----------------------------------------------------------------------------------- OpenAI vision


def test_our_vision_messages_fit_openais_chat_request_schema():
    turn = Turn("user", "What is in this picture?", [ImageInput(media_type="image/jpeg", data_b64="/9j/4AAQ")])
    request = {"model": "gpt-4o-mini", "messages": openai_messages("You recognise films.", [turn]), "max_tokens": 300}
    assert errors(openapi_validator(OPENAI, "CreateChatCompletionRequest"), request) == []
    by_url = Turn("user", "And this one?", [ImageInput(url="https://example.com/still.png")])
    request["messages"] = openai_messages("You recognise films.", [by_url])
    assert errors(openapi_validator(OPENAI, "CreateChatCompletionRequest"), request) == []


def test_sandbox_answers_openais_documented_image_input_request(http):
    example = next(
        e for e in OPENAI["paths"]["/chat/completions"]["post"]["x-oaiMeta"]["examples"] if e["title"] == "Image input"
    )
    # The model: one the sandbox knows (the documented gpt-5.4 is a reasoning model, which the
    # sandbox, like OpenAI for its reasoning models, refuses `max_tokens` for).
    request = {**curl_body(example["request"]["curl"]), "model": "gpt-4o-mini"}
    r = http.post("/openai/v1/chat/completions", headers=OPENAI_AUTH, json=request)
    assert r.status_code == 200, r.text
    assert errors(openapi_validator(OPENAI, "CreateChatCompletionResponse"), r.json()) == []


# ---------------------------------------------------------------------------------------- Replicate


def test_replicates_documented_prediction_fits_its_schema():
    assert errors(PREDICTION, DOCUMENTED_PREDICTION) == []


def create_prediction(http, prompt: str, **headers) -> httpx.Response:
    return http.post(
        "/replicate/v1/models/black-forest-labs/flux-schnell/predictions",
        headers={**REPLICATE_AUTH, **headers},
        json={"input": {"prompt": prompt, "num_outputs": 2, "aspect_ratio": "16:9"}},
    )


def test_sandbox_predictions_fit_replicates_schema_and_documented_keys(http, sandbox):
    waited = create_prediction(http, "a red kite", Prefer="wait")
    assert waited.status_code == 201 and waited.json()["status"] == "succeeded"
    assert errors(PREDICTION, waited.json()) == []
    assert set(DOCUMENTED_PREDICTION) <= set(waited.json())
    assert set(DOCUMENTED_PREDICTION["urls"]) <= set(waited.json()["urls"])
    assert all(o.startswith("data:image/png;base64,") for o in waited.json()["output"])

    sandbox.control.config(replicate_prediction_seconds=30)
    starting = create_prediction(http, "a blue kite")
    assert starting.status_code == 201 and starting.json()["status"] == "starting"
    assert errors(PREDICTION, starting.json()) == []
    polled = http.get(f"/replicate/v1/predictions/{starting.json()['id']}", headers=REPLICATE_AUTH)
    assert polled.json()["status"] == "processing"
    assert errors(PREDICTION, polled.json()) == []


def test_sandbox_failed_prediction_fits_replicates_schema(http):
    failed = create_prediction(http, "sandbox-fail please", Prefer="wait")
    assert failed.json()["status"] == "failed" and failed.json()["error"]
    assert errors(PREDICTION, failed.json()) == []


# ------------------------------------------------------------------------------------------- Google

GEMINI_RESPONSE = jsonschema_rs.validator_for(closed(genai_types.GenerateContentResponse.model_json_schema()))


def test_sandbox_gemini_image_answer_fits_google_genais_model(http):
    r = http.post(
        "/genai/v1beta/models/gemini-2.5-flash-image:generateContent",
        headers={"x-goog-api-key": DUMMY_KEYS["GEMINI_API_KEY"]},
        json={
            "contents": [{"role": "user", "parts": [{"text": "a harbour at dawn"}]}],
            "generationConfig": {"responseModalities": ["TEXT", "IMAGE"], "imageConfig": {"aspectRatio": "4:3"}},
        },
    )
    assert r.status_code == 200, r.text
    body = copy.deepcopy(r.json())
    assert errors(GEMINI_RESPONSE, body) == []
    inline = [p["inlineData"] for p in body["candidates"][0]["content"]["parts"] if "inlineData" in p]
    assert inline and base64.b64decode(inline[0]["data"]).startswith(b"\x89PNG")
