"""OpenAI-compatible API, served as OpenAI (``/openai/v1``), Groq (``/groq/openai/v1``),
DeepSeek (``/deepseek/v1``) and Gemini (``/gemini/v1beta/openai``).

Routes (relative to each base): ``POST /chat/completions`` (plain and SSE ``data: {chunk}`` ...
``data: [DONE]``; ``stream_options.include_usage`` adds the final usage chunk with empty
``choices``), ``GET /models``, ``GET /models/{id}``, ``POST /audio/transcriptions`` (multipart),
``POST /audio/speech`` (audio bytes); OpenAI only: ``POST /moderations`` (below) and
``POST /images/generations`` (b64_json PNGs, sandbox/images_api.py).

* auth: ``Authorization: Bearer <key>`` required -> 401 in the provider's error shape;
* errors: ``{"error": {"message", "type", "param", "code"}}``; Gemini's compatibility layer
  answers errors as a one-element JSON list ``[{"error": {"code", "message", "status"}}]``,
  as the real one does;
* which provider answered: header ``x-sandbox-provider``, ``system_fingerprint`` =
  ``fp_sandbox_<provider>``, the request log, and (``POST /_sandbox/config {"tag_replies": true}``)
  a ``[via <provider>]`` suffix in the reply text;
* unknown models (outside each provider's known families) get 404 ``model_not_found``; OpenAI's
  reasoning models (``o1``/``o3``/``o4``/``gpt-5``) refuse ``max_tokens`` and ``temperature != 1`` (400
  ``unsupported_parameter``/``unsupported_value``) as the real API does.
* moderation (OpenAI's ``omni-moderation-*`` / ``text-moderation-*``) is deterministic: an input
  containing the marker ``sandbox-flag`` is flagged under ``violence``, ``sandbox-flag:<category>``
  (e.g. ``sandbox-flag:self-harm/intent``) under that category; flagged categories score 0.98,
  the others 0.0001. One result per input (a string, a list of strings, or text/image parts).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route, Router

from . import images_api, llm, openai_audio
from .core import (
    JSON,
    OPENAI_FAMILY,
    SandboxState,
    StreamCut,
    bearer_token,
    dumps,
    now,
    register_error_renderer,
    sandbox_scope,
    stream_fault,
)
from .openai_chat_request import BadRequest, parse_chat
from .openai_moderation import MODERATION_CATEGORIES, moderation_inputs, moderation_result

OPENAI_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
    502: ("server_error", None),
    503: ("server_error", None),
}
OPENAI_MESSAGES = {
    401: "Incorrect API key provided.",
    429: "Rate limit reached for requests. Please try again in 1s.",
    500: "The server had an error while processing your request. Sorry about that!",
    503: "The engine is currently overloaded, please try again later.",
}
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

# Models each provider knows: exact ids listed by GET /models, plus accepted prefixes.
MODELS: dict[str, tuple[list[str], tuple[str, ...]]] = {
    "openai": (
        [
            "gpt-4o",
            "gpt-4o-mini",
            "gpt-4.1",
            "gpt-4.1-mini",
            "gpt-5",
            "gpt-5-mini",
            "o4-mini",
            "whisper-1",
            "gpt-4o-transcribe",
            "gpt-4o-mini-transcribe",
            "tts-1",
            "tts-1-hd",
            "gpt-4o-mini-tts",
            "omni-moderation-latest",
            "omni-moderation-2024-09-26",
            "text-moderation-latest",
        ],
        ("gpt-", "o1", "o3", "o4", "chatgpt-", "whisper-", "tts-", "ft:", "omni-moderation-", "text-moderation-"),
    ),
    "groq": (
        [
            "llama-3.3-70b-versatile",
            "llama-3.1-8b-instant",
            "openai/gpt-oss-120b",
            "openai/gpt-oss-20b",
            "meta-llama/llama-4-scout-17b-16e-instruct",
            "qwen/qwen3-32b",
            "whisper-large-v3",
            "whisper-large-v3-turbo",
        ],
        (
            "llama",
            "meta-llama/",
            "openai/",
            "qwen",
            "moonshotai/",
            "gemma",
            "mixtral",
            "deepseek-r1",
            "whisper-",
            "playai-tts",
        ),
    ),
    "deepseek": (["deepseek-chat", "deepseek-reasoner"], ("deepseek-",)),
    "gemini": (
        ["gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite", "gemini-2.0-flash"],
        ("gemini-", "models/gemini-", "gemma-"),
    ),
}
# OpenAI reasoning models refuse max_tokens (max_completion_tokens instead) and a temperature other than 1.
REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")
OWNERS = {"openai": "system", "groq": "Meta", "deepseek": "deepseek", "gemini": "google"}


def _openai_error(
    status: int,
    message: str | None = None,
    error_type: str | None = None,
    param: str | None = None,
    code: str | None = None,
) -> Response:
    etype, ecode = OPENAI_TYPES.get(status, ("server_error" if status >= 500 else "invalid_request_error", None))
    return JSON(
        {
            "error": {
                "message": message or OPENAI_MESSAGES.get(status, f"Error {status}"),
                "type": error_type or etype,
                "param": param,
                "code": code if code is not None else ecode,
            }
        },
        status_code=status,
    )


def _gemini_error(status: int, message: str | None = None, error_type: str | None = None, **_: Any) -> Response:
    return JSON(
        [
            {
                "error": {
                    "code": status,
                    "message": message or f"Error {status}",
                    "status": error_type or GOOGLE_STATUS.get(status, "UNKNOWN"),
                }
            }
        ],
        status_code=status,
    )


@register_error_renderer("openai", "groq", "deepseek")
def render_error(status: int, message: str | None = None, error_type: str | None = None, **kw: Any) -> Response:
    return _openai_error(status, message, error_type, **kw)


@register_error_renderer("gemini")
def render_gemini_error(status: int, message: str | None = None, error_type: str | None = None, **kw: Any) -> Response:
    return _gemini_error(status, message, error_type)


def _err(provider: str, status: int, message: str, param: str | None = None, code: str | None = None) -> Response:
    if provider == "gemini":
        return _gemini_error(status, message)
    return _openai_error(status, message, param=param, code=code)


def _model_known(provider: str, model: str) -> bool:
    listed, prefixes = MODELS[provider]
    return model in listed or model.startswith(prefixes)


def _usage(prompt: int, completion: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def build(state: SandboxState, provider: str) -> Router:
    assert provider in OPENAI_FAMILY

    def auth(request: Request) -> Response | None:
        if bearer_token(request) is None:
            return _err(
                provider,
                401,
                "You didn't provide an API key. You need to provide your API key in an Authorization header "
                "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            )
        return None

    def completion_id() -> str:
        if provider == "deepseek":
            return f"{state.rand(8).lower()}-{state.rand(4).lower()}-{state.rand(4).lower()}-{state.rand(12).lower()}"
        return "chatcmpl-" + state.rand(29)

    async def chat(request: Request) -> Response:
        if (err := auth(request)) is not None:
            return err
        body = sandbox_scope(request)["parsed"]
        try:
            parsed = parse_chat(body)
        except BadRequest as e:
            return _err(provider, e.status, e.message, e.param, e.code)
        model = body["model"]
        if not _model_known(provider, model):
            return _err(
                provider,
                404,
                f"The model `{model}` does not exist or you do not have access to it.",
                code="model_not_found",
            )
        if provider == "openai" and model.startswith(REASONING_PREFIXES):
            if body.get("max_tokens") is not None:
                return _err(
                    provider,
                    400,
                    "Unsupported parameter: 'max_tokens' is not supported with this model. "
                    "Use 'max_completion_tokens' instead.",
                    "max_tokens",
                    "unsupported_parameter",
                )
            temp = body.get("temperature")
            if temp is not None and float(temp) != 1:
                return _err(
                    provider,
                    400,
                    f"Unsupported value: 'temperature' does not support {temp} with this "
                    "model. Only the default (1) value is supported.",
                    "temperature",
                    "unsupported_value",
                )
        fmt = (body.get("response_format") or {}).get("type")
        tag = provider if state.config.get("tag_replies") else None
        text = llm.compose_reply(
            parsed["system"], parsed["turns"], json_object=fmt in ("json_object", "json_schema"), tag=tag
        )
        stop = body.get("stop")
        finish = "stop"
        for seq in [stop] if isinstance(stop, str) else stop or []:
            if seq and seq in text:
                text = text[: text.index(seq)]
                break
        max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
        toks, cut = llm.truncate_to_tokens(text, max_tokens)
        if cut:
            finish = "length"
        n = int(body.get("n") or 1)
        cid, created = completion_id(), now()
        fingerprint = f"fp_sandbox_{provider}"
        headers = {"x-sandbox-provider": provider, "x-request-id": "req_" + state.rand(32).lower()}
        usage = _usage(parsed["prompt_tokens"], len(toks) * n)
        lat = state.latency_for(provider)
        if not body.get("stream"):
            delay = lat.first_token_seconds + lat.per_token_seconds * len(toks)
            if delay:
                await asyncio.sleep(delay)
            choices = [
                {
                    "index": i,
                    "message": {"role": "assistant", "content": "".join(toks), "refusal": None, "annotations": []},
                    "logprobs": None,
                    "finish_reason": finish,
                }
                for i in range(n)
            ]
            return JSON(
                {
                    "id": cid,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": choices,
                    "usage": usage,
                    "service_tier": "default",
                    "system_fingerprint": fingerprint,
                },
                headers=headers,
            )

        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        fault = stream_fault(request)

        def chunk(choices: list[dict[str, Any]], usage_value: Any = None) -> bytes:
            data: dict[str, Any] = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "service_tier": "default",
                "system_fingerprint": fingerprint,
                "choices": choices,
            }
            if include_usage:
                data["usage"] = usage_value
            return b"data: " + dumps(data) + b"\n\n"

        async def events() -> AsyncIterator[bytes]:
            yield chunk(
                [
                    {
                        "index": i,
                        "delta": {"role": "assistant", "content": "", "refusal": None},
                        "logprobs": None,
                        "finish_reason": None,
                    }
                    for i in range(n)
                ]
            )
            if lat.first_token_seconds:
                await asyncio.sleep(lat.first_token_seconds)
            for k, piece in enumerate(toks):
                if fault is not None and k >= fault.after_chunks:
                    if fault.drop_connection:
                        raise StreamCut("sandbox fault: stream cut")
                    status = fault.status or 500
                    etype, ecode = OPENAI_TYPES.get(status, ("server_error", None))
                    yield (
                        b"data: "
                        + dumps(
                            {
                                "error": {
                                    "message": fault.message or OPENAI_MESSAGES.get(status, "stream failed"),
                                    "type": fault.error_type or etype,
                                    "param": None,
                                    "code": ecode,
                                }
                            }
                        )
                        + b"\n\n"
                    )
                    return
                if k and lat.per_token_seconds:
                    await asyncio.sleep(lat.per_token_seconds)
                yield chunk(
                    [
                        {"index": i, "delta": {"content": piece}, "logprobs": None, "finish_reason": None}
                        for i in range(n)
                    ]
                )
            yield chunk([{"index": i, "delta": {}, "logprobs": None, "finish_reason": finish} for i in range(n)])
            if include_usage:
                yield chunk([], usage)
            yield b"data: [DONE]\n\n"

        return StreamingResponse(
            events(),
            media_type="text/event-stream; charset=utf-8",
            headers=dict(headers, **{"cache-control": "no-cache"}),
        )

    def model_obj(mid: str) -> dict[str, Any]:
        return {"id": mid, "object": "model", "created": 1715367049, "owned_by": OWNERS[provider]}

    async def models(request: Request) -> Response:
        if (err := auth(request)) is not None:
            return err
        return JSON({"object": "list", "data": [model_obj(m) for m in MODELS[provider][0]]})

    async def model(request: Request) -> Response:
        if (err := auth(request)) is not None:
            return err
        mid = request.path_params["model_id"]
        if not _model_known(provider, mid):
            return _err(provider, 404, f"The model '{mid}' does not exist", param="model", code="model_not_found")
        return JSON(model_obj(mid))

    def json_body(request: Request) -> dict[str, Any] | Response:
        """The request's JSON object, or the error to answer (no key, not a JSON object)."""
        if (err := auth(request)) is not None:
            return err
        body = sandbox_scope(request)["parsed"]
        if not isinstance(body, dict):
            return _err(provider, 400, "We could not parse the JSON body of your request.")
        return body

    async def moderations(request: Request) -> Response:
        body = json_body(request)
        if isinstance(body, Response):
            return body
        if "input" not in body:
            return _err(provider, 400, "Missing required parameter: 'input'.", "input", "missing_required_parameter")
        model = str(body.get("model") or "omni-moderation-latest")
        if not model.startswith(("omni-moderation-", "text-moderation-")) or not _model_known(provider, model):
            return _err(
                provider,
                404,
                f"The model `{model}` does not exist or you do not have access to it.",
                code="model_not_found",
            )
        inputs = moderation_inputs(body["input"])
        if inputs is None:
            return _err(
                provider,
                400,
                "Invalid type for 'input': expected a string, an array of strings or an "
                "array of text and image_url objects.",
                "input",
                "invalid_type",
            )
        try:
            results = [moderation_result(text, image) for text, image in inputs]
        except ValueError as e:
            return _err(
                provider,
                400,
                f"The sandbox knows no moderation category {str(e)!r} (sandbox-flag:<category>"
                f" with one of {', '.join(MODERATION_CATEGORIES)}).",
                "input",
                "invalid_value",
            )
        return JSON(
            {"id": "modr-" + state.rand(24), "model": model, "results": results},
            headers={"x-sandbox-provider": provider},
        )

    async def image_generations(request: Request) -> Response:
        if (denied := auth(request)) is not None:
            return denied
        status, answer = images_api.openai_images_generation(state, sandbox_scope(request)["parsed"])
        return JSON(answer, status_code=status, headers={"x-sandbox-provider": provider})

    routes = [
        Route("/chat/completions", chat, methods=["POST"]),
        Route("/models", models, methods=["GET"]),
        Route("/models/{model_id:path}", model, methods=["GET"]),
        *openai_audio.routes(state, provider, auth, json_body, _err, _model_known),
    ]
    if provider == "openai":  # the OpenAI-compatible providers have no moderation endpoint
        routes.append(Route("/moderations", moderations, methods=["POST"]))
        routes.append(Route("/images/generations", image_generations, methods=["POST"]))
    return Router(routes=routes)
