"""Anthropic Messages API (``/anthropic``): ``POST /v1/messages`` (plain and SSE stream),
``POST /v1/messages/count_tokens``, ``GET /v1/models``.

Wire details kept from the real API:
* auth: ``x-api-key`` (or ``Authorization: Bearer``) required -> 401 ``authentication_error``;
  ``anthropic-version`` header required -> 400 ``invalid_request_error``;
* errors: ``{"type": "error", "error": {"type": ..., "message": ...}, "request_id": "req_..."}``
  with the status -> type table of the docs (400 invalid_request_error, 401 authentication_error,
  403 permission_error, 404 not_found_error, 413 request_too_large, 429 rate_limit_error,
  500 api_error, 504 timeout_error, 529 overloaded_error); a ``request-id`` header on every answer;
* stream: ``message_start``, ``content_block_start``, ``ping``, ``content_block_delta``
  (``text_delta``) ..., ``content_block_stop``, ``message_delta`` (``stop_reason``, cumulative
  ``usage.output_tokens``), ``message_stop``; a mid-stream failure is an ``event: error`` frame;
* ``stop_reason``: ``end_turn``, ``max_tokens`` (reply cut at ``max_tokens``), ``stop_sequence``;
* images (``base64`` with media type checked against the bytes, or ``url``) and documents are
  accepted; unknown models (not ``claude-*``) get 404 ``not_found_error``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route, Router

from . import llm
from .core import JSON, SandboxState, StreamCut, dumps, register_error_renderer, sandbox_scope, stream_fault

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
DEFAULT_MESSAGES = {
    "overloaded_error": "Overloaded",
    "rate_limit_error": "Number of request tokens has exceeded your per-minute rate limit",
    "api_error": "Internal server error",
    "authentication_error": "invalid x-api-key",
    "timeout_error": "Request timed out",
}
IMAGE_MEDIA_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
MODELS = [  # what GET /v1/models lists; any "claude-*" model is accepted by /v1/messages
    ("claude-opus-4-6", "Claude Opus 4.6", "2026-02-01T00:00:00Z"),
    ("claude-sonnet-4-6", "Claude Sonnet 4.6", "2026-02-01T00:00:00Z"),
    ("claude-haiku-4-5-20251001", "Claude Haiku 4.5", "2025-10-01T00:00:00Z"),
    ("claude-sonnet-4-5-20250929", "Claude Sonnet 4.5", "2025-09-29T00:00:00Z"),
    ("claude-opus-4-5-20251101", "Claude Opus 4.5", "2025-11-01T00:00:00Z"),
]


def _request_id(state: SandboxState | None) -> str:
    if state is None:
        return "req_011CSandbox"
    return "req_011C" + state.rand(16)


def error_body(error_type: str, message: str, request_id: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type, "message": message}, "request_id": request_id}


@register_error_renderer("anthropic")
def render_error(status: int, message: str | None = None, error_type: str | None = None, state=None) -> Response:
    etype = error_type or ERROR_TYPES.get(status) or ("api_error" if status >= 500 else "invalid_request_error")
    rid = _request_id(state)
    resp = JSON(
        error_body(etype, message or DEFAULT_MESSAGES.get(etype, etype.replace("_", " ")), rid), status_code=status
    )
    resp.headers["request-id"] = rid
    if status >= 500:
        resp.headers["x-should-retry"] = "true"
    return resp


class BadRequest(Exception):
    def __init__(self, message: str, status: int = 400, error_type: str = "invalid_request_error"):
        super().__init__(message)
        self.message = message
        self.status = status
        self.error_type = error_type


def _sniff_image(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def _check_blocks(content: Any, where: str) -> None:
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise BadRequest(f"{where}: Input should be a valid list")
    for j, block in enumerate(content):
        if not isinstance(block, dict) or "type" not in block:
            raise BadRequest(f"{where}.{j}: Input should be a valid dictionary with a 'type'")
        if block["type"] == "image":
            src = block.get("source") or {}
            stype = src.get("type")
            if stype == "base64":
                mt = src.get("media_type")
                if mt not in IMAGE_MEDIA_TYPES:
                    raise BadRequest(
                        f"{where}.{j}.image.source.base64.media_type: Input should be "
                        "'image/jpeg', 'image/png', 'image/gif' or 'image/webp'"
                    )
                try:
                    raw = base64.b64decode(src.get("data") or "", validate=True)
                except (binascii.Error, ValueError):
                    raise BadRequest(f"{where}.{j}.image.source.base64: invalid base64 data") from None
                if not raw:
                    raise BadRequest(f"{where}.{j}.image.source.base64.data: image cannot be empty")
                sniffed = _sniff_image(raw)
                if sniffed is None:
                    raise BadRequest(f"{where}.{j}.image.source.base64.data: Could not process image")
                if sniffed != mt:
                    raise BadRequest(
                        f"{where}.{j}.image.source.base64.data: Image does not match the provided media type {mt}"
                    )
            elif stype == "url":
                if not str(src.get("url", "")).startswith(("http://", "https://")):
                    raise BadRequest(f"{where}.{j}.image.source.url: Input should be a valid URL")
            elif stype != "file":
                raise BadRequest(
                    f"{where}.{j}.image.source: Input tag '{stype}' found using 'type' does not match any of the "
                    "expected tags: 'base64', 'url', 'file'"
                )


def _system_text(system: Any) -> str:
    if system is None:
        return ""
    if isinstance(system, str):
        return system
    text, _ = llm.text_of(system)
    return text


def _parse_request(body: Any, count_only: bool = False) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequest("Request body must be a JSON object")
    if not body.get("model"):
        raise BadRequest("model: Field required")
    if not count_only:
        if "max_tokens" not in body:
            raise BadRequest("max_tokens: Field required")
        mt = body["max_tokens"]
        if not isinstance(mt, int) or isinstance(mt, bool) or mt < 1:
            raise BadRequest("max_tokens: Input should be greater than or equal to 1")
    messages = body.get("messages")
    if messages is None:
        raise BadRequest("messages: Field required")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages: at least one message is required")
    turns: list[llm.Turn] = []
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise BadRequest(f"messages.{i}: Input should be a valid dictionary")
        if msg.get("role") not in ("user", "assistant"):
            raise BadRequest(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        if "content" not in msg:
            raise BadRequest(f"messages.{i}.content: Field required")
        _check_blocks(msg["content"], f"messages.{i}.content")
        text, images = llm.text_of(msg["content"])
        turns.append(llm.Turn(msg["role"], text, images, llm.image_data(msg["content"])))
    temperature = body.get("temperature")
    if temperature is not None and not (0 <= float(temperature) <= 1):
        raise BadRequest("temperature: range: 0..1")
    if not str(body["model"]).startswith("claude-"):
        raise BadRequest(f"model: {body['model']}", status=404, error_type="not_found_error")
    system = _system_text(body.get("system"))
    extra = dumps(body.get("tools")).decode() if body.get("tools") else ""
    return {"system": system, "turns": turns, "input_tokens": llm.input_tokens(system, turns, extra)}


def _auth_error(request: Request, state: SandboxState) -> Response | None:
    if not request.headers.get("x-api-key") and not request.headers.get("authorization"):
        return render_error(401, "x-api-key header is required", state=state)
    if not request.headers.get("anthropic-version"):
        return render_error(400, "anthropic-version: header is required", state=state)
    return None


def build(state: SandboxState) -> Router:
    async def messages(request: Request) -> Response:
        sb = sandbox_scope(request)
        if (err := _auth_error(request, state)) is not None:
            return err
        body = sb["parsed"]
        try:
            parsed = _parse_request(body)
        except BadRequest as e:
            return render_error(e.status, e.message, e.error_type, state=state)
        tag = "anthropic" if state.config.get("tag_replies") else None
        text = llm.compose_reply(parsed["system"], parsed["turns"], tag=tag)
        stop_reason, stop_sequence = "end_turn", None
        for seq in body.get("stop_sequences") or []:
            if seq and seq in text:
                text = text[: text.index(seq)]
                stop_reason, stop_sequence = "stop_sequence", seq
                break
        toks, cut = llm.truncate_to_tokens(text, body["max_tokens"])
        if cut:
            stop_reason, stop_sequence = "max_tokens", None
        msg_id = "msg_01" + state.rand(22)
        rid = _request_id(state)
        usage = {
            "input_tokens": parsed["input_tokens"],
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
            "output_tokens": len(toks),
            "service_tier": "standard",
        }
        headers = {"request-id": rid, "x-sandbox-provider": "anthropic"}
        lat = state.latency_for("anthropic")
        if not body.get("stream"):
            delay = lat.first_token_seconds + lat.per_token_seconds * len(toks)
            if delay:
                await asyncio.sleep(delay)
            return JSON(
                {
                    "id": msg_id,
                    "type": "message",
                    "role": "assistant",
                    "model": body["model"],
                    "content": [{"type": "text", "text": "".join(toks)}],
                    "stop_reason": stop_reason,
                    "stop_sequence": stop_sequence,
                    "usage": usage,
                },
                headers=headers,
            )
        fault = stream_fault(request)

        def frame(event: str, data: dict[str, Any]) -> bytes:
            return b"event: " + event.encode() + b"\ndata: " + dumps(data) + b"\n\n"

        async def events() -> AsyncIterator[bytes]:
            start_usage = dict(usage, output_tokens=1)
            yield frame(
                "message_start",
                {
                    "type": "message_start",
                    "message": {
                        "id": msg_id,
                        "type": "message",
                        "role": "assistant",
                        "model": body["model"],
                        "content": [],
                        "stop_reason": None,
                        "stop_sequence": None,
                        "usage": start_usage,
                    },
                },
            )
            yield frame(
                "content_block_start",
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            )
            yield frame("ping", {"type": "ping"})
            if lat.first_token_seconds:
                await asyncio.sleep(lat.first_token_seconds)
            for n, piece in enumerate(toks):
                if fault is not None and n >= fault.after_chunks:
                    if fault.drop_connection:
                        raise StreamCut("sandbox fault: stream cut")
                    etype = fault.error_type or ERROR_TYPES.get(fault.status or 529, "overloaded_error")
                    yield frame(
                        "error",
                        error_body(etype, fault.message or DEFAULT_MESSAGES.get(etype, etype), rid),
                    )
                    return
                if n and lat.per_token_seconds:
                    await asyncio.sleep(lat.per_token_seconds)
                yield frame(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}},
                )
            yield frame("content_block_stop", {"type": "content_block_stop", "index": 0})
            yield frame(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
                    "usage": {
                        "input_tokens": parsed["input_tokens"],
                        "cache_creation_input_tokens": 0,
                        "cache_read_input_tokens": 0,
                        "output_tokens": len(toks),
                    },
                },
            )
            yield frame("message_stop", {"type": "message_stop"})

        return StreamingResponse(
            events(),
            media_type="text/event-stream; charset=utf-8",
            headers=dict(headers, **{"cache-control": "no-cache"}),
        )

    async def count_tokens(request: Request) -> Response:
        if (err := _auth_error(request, state)) is not None:
            return err
        try:
            parsed = _parse_request(sandbox_scope(request)["parsed"], count_only=True)
        except BadRequest as e:
            return render_error(e.status, e.message, e.error_type, state=state)
        return JSON({"input_tokens": parsed["input_tokens"]}, headers={"request-id": _request_id(state)})

    async def models(request: Request) -> Response:
        if (err := _auth_error(request, state)) is not None:
            return err
        data = [
            {"type": "model", "id": mid, "display_name": name, "created_at": created} for mid, name, created in MODELS
        ]
        return JSON({"data": data, "has_more": False, "first_id": data[0]["id"], "last_id": data[-1]["id"]})

    async def model(request: Request) -> Response:
        if (err := _auth_error(request, state)) is not None:
            return err
        mid = request.path_params["model_id"]
        for m, name, created in MODELS:
            if m == mid:
                return JSON({"type": "model", "id": m, "display_name": name, "created_at": created})
        return render_error(404, f"model: {mid}", state=state)

    return Router(
        routes=[
            Route("/v1/messages", messages, methods=["POST"]),
            Route("/v1/messages/count_tokens", count_tokens, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/v1/models/{model_id}", model, methods=["GET"]),
        ]
    )
