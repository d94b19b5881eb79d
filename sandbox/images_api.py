"""Image generation wire protocols: Google's (Imagen `:predict`, Gemini `:generateContent` with
image output), Replicate's predictions, and OpenAI's `POST /images/generations` (served by the
OpenAI mount, see openai_api.py).

Every image is a PNG drawn with Pillow from the prompt (and the model, the image's index and the
aspect ratio): the same request gives the same bytes, a different prompt different ones.

* Google (provider ``genai``, mount ``/genai``): the Gemini Developer API form
  ``POST /v1beta/models/{model}:predict|:generateContent`` (and ``/v1/models/...:generateContent``)
  and the Vertex AI (express mode) form ``POST /v1beta1/publishers/google/models/{model}:predict|:generateContent``;
  the key in
  ``x-goog-api-key`` (or ``?key=``); errors ``{"error": {"code", "message", "status"}}``.
  Imagen models (``imagen-*``) answer ``:predict``, Gemini image models (``gemini-*image*``)
  ``:generateContent``; another model → 404 ``NOT_FOUND``.
* Replicate (provider ``replicate``, mount ``/replicate``): ``POST /v1/models/{owner}/{name}/predictions``
  and ``GET /v1/predictions/{id}``, ``Authorization: Bearer|Token <token>``; errors as problem
  details ``{"title", "detail", "status"}``. A prediction is ready ``replicate_prediction_seconds``
  (``POST /_sandbox/config``, default 0) after it was created: with ``Prefer: wait[=N]`` the POST
  waits for it when it is ready within the wait (60 s for a bare ``wait``, at most
  ``replicate_max_wait_seconds``, default 60) and answers ``succeeded``, else answers ``starting``
  at once; polling answers ``processing`` until ready.
  Output: a list of ``data:image/png;base64,...`` URIs (``num_outputs``, default 1). An input
  prompt containing ``sandbox-fail`` makes the prediction end ``failed``.
* ``POST /_sandbox/config {"broken_images": ["genai", ...]}``: those providers send truncated PNGs.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import time
from datetime import UTC, datetime
from typing import Any

from PIL import Image, ImageDraw
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, Router

from .core import JSON, SandboxState, bearer_token, now, register_error_renderer, sandbox_scope

GOOGLE_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
# Small images (the aspect ratio is what matters to the callers); long side 256 px.
ASPECT_SIZES = {
    "1:1": (256, 256),
    "3:4": (192, 256),
    "4:3": (256, 192),
    "9:16": (144, 256),
    "16:9": (256, 144),
}
REPLICATE_WAIT_SECONDS = 60.0


def make_png(prompt: str, *, model: str = "", index: int = 0, aspect_ratio: str = "1:1") -> bytes:
    """A deterministic PNG for a prompt: background and bands coloured from sha256(model, index, prompt)."""
    width, height = ASPECT_SIZES.get(aspect_ratio, ASPECT_SIZES["1:1"])
    digest = hashlib.sha256(f"{model}\x00{index}\x00{prompt}".encode()).digest()
    image = Image.new("RGB", (width, height), tuple(digest[0:3]))
    draw = ImageDraw.Draw(image)
    bands = 6
    for i in range(bands):
        color = tuple(digest[3 + 3 * i : 6 + 3 * i])
        top = i * height // bands
        left = digest[24 + i] * width // 512
        draw.rectangle((left, top, width - 1 - left // 2, top + height // (2 * bands)), fill=color)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def drawn(state: SandboxState, provider: str, prompt: str, **kw: Any) -> bytes:
    """`make_png`, or its first half (a truncated PNG) when `broken_images` (`POST /_sandbox/config`)
    lists this provider: what a provider sending a corrupt file looks like."""
    png = make_png(prompt, **kw)
    return png[: len(png) // 2] if provider in state.config.get("broken_images", ()) else png


def iso_now() -> str:
    """Replicate's timestamps: ISO 8601 UTC with microseconds (its document: `format: date-time`)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


# ----------------------------------------------------------------------------------------------
# Google: Imagen and Gemini image output
# ----------------------------------------------------------------------------------------------
@register_error_renderer("genai")
def render_google_error(status: int, message: str | None = None, error_type: str | None = None) -> Response:
    return JSON(
        {
            "error": {
                "code": status,
                "message": message or "sandbox fault",
                "status": GOOGLE_STATUS.get(status, "UNKNOWN"),
            }
        },
        status_code=status,
    )


def _google_key(request: Request) -> str | None:
    return request.headers.get("x-goog-api-key") or request.query_params.get("key")


def build_google(state: SandboxState) -> Router:
    def body_of(request: Request) -> dict[str, Any] | None:
        parsed = sandbox_scope(request)["parsed"]
        return parsed if isinstance(parsed, dict) else None

    async def predict(request: Request) -> Response:
        if not _google_key(request):
            return render_google_error(401, "API key not valid. Please pass a valid API key.")
        model = request.path_params["model"]
        if not model.startswith("imagen-"):
            return render_google_error(404, f"models/{model} is not found for predict.")
        body = body_of(request)
        instances = (body or {}).get("instances")
        if not isinstance(instances, list) or not instances or not isinstance(instances[0].get("prompt"), str):
            return render_google_error(400, "instances[0].prompt is required.")
        params = body.get("parameters") or {}
        count = params.get("sampleCount", 4)
        aspect = params.get("aspectRatio", "1:1")
        if not isinstance(count, int) or not 1 <= count <= 4:
            return render_google_error(400, "sampleCount must be between 1 and 4.")
        if aspect not in ASPECT_SIZES:
            return render_google_error(400, f"Unsupported aspect ratio {aspect}.")
        mime = ((params.get("outputOptions") or {}).get("mimeType")) or "image/png"
        if mime != "image/png":
            return render_google_error(400, "The sandbox draws image/png only.")
        prompt = instances[0]["prompt"]
        predictions = [
            {
                "bytesBase64Encoded": base64.b64encode(
                    drawn(state, "genai", prompt, model=model, index=i, aspect_ratio=aspect)
                ).decode("ascii"),
                "mimeType": "image/png",
            }
            for i in range(count)
        ]
        return JSON({"predictions": predictions})

    async def generate_content(request: Request) -> Response:
        if not _google_key(request):
            return render_google_error(401, "API key not valid. Please pass a valid API key.")
        model = request.path_params["model"]
        if not (model.startswith("gemini-") and "image" in model):
            return render_google_error(404, f"models/{model} is not found or does not output images.")
        body = body_of(request) or {}
        texts = [
            part["text"]
            for content in body.get("contents") or []
            if isinstance(content, dict)
            for part in content.get("parts") or []
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        ]
        if not texts:
            return render_google_error(400, "contents must hold a text part.")
        config = body.get("generationConfig") or {}
        modalities = [str(m).upper() for m in config.get("responseModalities") or []]
        aspect = (config.get("imageConfig") or {}).get("aspectRatio", "1:1")
        if aspect not in ASPECT_SIZES:
            return render_google_error(400, f"Unsupported aspect ratio {aspect}.")
        prompt = texts[-1]
        parts: list[dict[str, Any]] = [{"text": f"Here is your image: {prompt[:80]}"}]
        if "IMAGE" in modalities:
            png = drawn(state, "genai", prompt, model=model, aspect_ratio=aspect)
            parts.append({"inlineData": {"mimeType": "image/png", "data": base64.b64encode(png).decode("ascii")}})
        words = len(prompt.split())
        return JSON(
            {
                "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}],
                "usageMetadata": {
                    "promptTokenCount": words,
                    "candidatesTokenCount": 1290 if "IMAGE" in modalities else 8,
                    "totalTokenCount": words + (1290 if "IMAGE" in modalities else 8),
                },
                "modelVersion": model,
                "responseId": f"sandbox-{state.rand(16)}",
            }
        )

    return Router(
        routes=[
            Route("/v1beta/models/{model}:predict", predict, methods=["POST"]),
            Route("/v1beta1/publishers/google/models/{model}:predict", predict, methods=["POST"]),
            Route("/v1beta/models/{model}:generateContent", generate_content, methods=["POST"]),
            Route("/v1/models/{model}:generateContent", generate_content, methods=["POST"]),
            Route("/v1beta1/publishers/google/models/{model}:generateContent", generate_content, methods=["POST"]),
        ]
    )


# ----------------------------------------------------------------------------------------------
# Replicate
# ----------------------------------------------------------------------------------------------
@register_error_renderer("replicate")
def render_replicate_error(status: int, message: str | None = None, error_type: str | None = None) -> Response:
    titles = {401: "Unauthenticated", 404: "Not found", 422: "Input validation failed", 429: "Too many requests"}
    return JSON(
        {"title": titles.get(status, "Server error"), "detail": message or "sandbox fault", "status": status},
        status_code=status,
        headers={"content-type": "application/problem+json"},
    )


def _replicate_token(request: Request) -> str | None:
    token = bearer_token(request)
    if token:
        return token
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "token" and value.strip() else None


def _wait_seconds(prefer: str) -> float | None:
    """`Prefer: wait` → 60 s, `Prefer: wait=N` → N s, anything else → no wait."""
    for item in prefer.split(","):
        key, _, value = item.strip().partition("=")
        if key.strip().lower() == "wait":
            try:
                return float(value) if value else REPLICATE_WAIT_SECONDS
            except ValueError:
                return None
    return None


def build_replicate(state: SandboxState) -> Router:
    def predictions() -> dict[str, dict[str, Any]]:
        return state.stores.setdefault("replicate_predictions", {})

    def view(request: Request, p: dict[str, Any]) -> dict[str, Any]:
        done = time.monotonic() >= p["_ready_at"]
        out = {k: v for k, v in p.items() if not k.startswith("_")}
        base = str(request.base_url).rstrip("/") + request.scope.get("root_path", "")
        out["urls"] = {
            "web": f"{base}/p/{p['id']}",  # required by Replicate's document; no page behind it here
            "get": f"{base}/v1/predictions/{p['id']}",
            "cancel": f"{base}/v1/predictions/{p['id']}/cancel",
        }
        if not done:
            return out
        if "sandbox-fail" in p["input"].get("prompt", ""):
            out.update(status="failed", error="sandbox: the model failed (prompt asked for it)", completed_at=iso_now())
            return out
        out.update(
            status="succeeded",
            output=p["_output"],
            started_at=p["created_at"],
            completed_at=iso_now(),
            metrics={"predict_time": 0.01, "total_time": 0.01},
        )
        return out

    async def create(request: Request) -> Response:
        if not _replicate_token(request):
            return render_replicate_error(401, "You did not pass an authentication token")
        body = sandbox_scope(request)["parsed"]
        if not isinstance(body, dict) or not isinstance(body.get("input"), dict):
            return render_replicate_error(422, "input is required")
        inp = body["input"]
        prompt = inp.get("prompt")
        if not isinstance(prompt, str) or not prompt:
            return render_replicate_error(422, "input.prompt is required")
        count = inp.get("num_outputs", 1)
        aspect = inp.get("aspect_ratio", "1:1")
        if not isinstance(count, int) or not 1 <= count <= 4:
            return render_replicate_error(422, "input.num_outputs: must be between 1 and 4")
        if aspect not in ASPECT_SIZES:
            return render_replicate_error(422, f"input.aspect_ratio: {aspect} is not one of {list(ASPECT_SIZES)}")
        model = f"{request.path_params['owner']}/{request.path_params['name']}"
        delay = float(state.config.get("replicate_prediction_seconds", 0))
        pid = state.rand(26, "abcdefghijklmnopqrstuvwxyz0123456789")
        p = {
            "id": pid,
            "model": model,
            "version": "hidden",
            "input": inp,
            "logs": "",
            "output": None,
            "data_removed": False,
            "error": None,
            "status": "starting",
            "created_at": iso_now(),
            "source": "api",
            "_ready_at": time.monotonic() + delay,
            "_output": [
                data_uri(drawn(state, "replicate", prompt, model=model, index=i, aspect_ratio=aspect))
                for i in range(count)
            ],
        }
        predictions()[pid] = p
        wait = _wait_seconds(request.headers.get("prefer", ""))
        if wait is not None:  # the server holds a request at most this long (Replicate: 60 s)
            wait = min(wait, float(state.config.get("replicate_max_wait_seconds", REPLICATE_WAIT_SECONDS)))
        if wait is not None and delay <= wait:
            await asyncio.sleep(delay)
            return JSON(view(request, p), status_code=201)
        # Not waited for (no `Prefer: wait`, or not ready within it): `starting`, as Replicate answers.
        return JSON({**view(request, p), "status": "starting", "output": None}, status_code=201)

    async def get(request: Request) -> Response:
        if not _replicate_token(request):
            return render_replicate_error(401, "You did not pass an authentication token")
        p = predictions().get(request.path_params["pid"])
        if p is None:
            return render_replicate_error(404, "The requested resource could not be found.")
        out = view(request, p)
        if out["status"] == "starting":
            out["status"] = "processing"
        return JSON(out)

    return Router(
        routes=[
            Route("/v1/models/{owner}/{name}/predictions", create, methods=["POST"]),
            Route("/v1/predictions/{pid}", get, methods=["GET"]),
        ]
    )


# ----------------------------------------------------------------------------------------------
# OpenAI images (mounted in openai_api.build for the "openai" provider)
# ----------------------------------------------------------------------------------------------
OPENAI_IMAGE_SIZES = {
    "1024x1024": "1:1",
    "1536x1024": "4:3",
    "1024x1536": "3:4",
    "1792x1024": "16:9",
    "1024x1792": "9:16",
    "auto": "1:1",
}


def openai_images_generation(state: SandboxState, body: Any) -> tuple[int, dict[str, Any]]:
    """`POST /images/generations` → (status, JSON): gpt-image-* always answer b64_json; dall-e-*
    only when asked for it (the sandbox hands out no image URLs)."""

    def bad(message: str, param: str | None = None, status: int = 400) -> tuple[int, dict[str, Any]]:
        return status, {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": None}}

    if not isinstance(body, dict):
        return bad("The request body must be JSON.")
    model = body.get("model") or "dall-e-2"
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        return bad("Missing required parameter: 'prompt'.", "prompt")
    if not (model.startswith("gpt-image-") or model.startswith("dall-e-")):
        return bad(f"The model `{model}` does not exist or you do not have access to it.", status=404)
    n = body.get("n", 1)
    if not isinstance(n, int) or not 1 <= n <= 10:
        return bad(f"Invalid 'n': integer between 1 and 10 expected, got {n!r}.", "n")
    size = body.get("size") or "1024x1024"
    if size not in OPENAI_IMAGE_SIZES:
        return bad(f"Invalid value: '{size}'. Supported values are: {', '.join(OPENAI_IMAGE_SIZES)}.", "size")
    if model.startswith("dall-e-") and body.get("response_format") != "b64_json":
        return bad("The sandbox answers response_format=b64_json only.", "response_format")
    aspect = OPENAI_IMAGE_SIZES[size]
    data = [
        {
            "b64_json": base64.b64encode(
                drawn(state, "openai", prompt, model=model, index=i, aspect_ratio=aspect)
            ).decode("ascii")
        }
        for i in range(n)
    ]
    answer: dict[str, Any] = {"created": now(), "data": data}
    if model.startswith("gpt-image-"):
        answer.update(
            background="opaque",
            output_format="png",
            size=size,
            quality="medium",
            usage={
                "input_tokens": len(prompt.split()),
                "output_tokens": 1056 * n,
                "total_tokens": len(prompt.split()) + 1056 * n,
                "input_tokens_details": {"text_tokens": len(prompt.split()), "image_tokens": 0},
            },
        )
    return 200, answer
