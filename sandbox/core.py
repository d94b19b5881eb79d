"""Shared machinery of the sandbox: state, request recording, fault injection (bodies: sandbox/bodies.py).

Every provider is an ASGI app wrapped in :class:`ProviderApp`, which
  1. reads the request body once (and replays it to the provider's handlers),
  2. records the request (method, path, query, headers, parsed body) in ``SandboxState.requests``,
  3. applies the first matching fault (delay, error status in the provider's own error shape,
     a stream cut after N chunks, a dropped connection) and
  4. records the response status.

Handlers find what the wrapper parsed in ``request.scope["sandbox"]``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import string
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .bodies import SECRET_HEADERS, mask_secret, parse_body, parse_stripe_form, recordable

# Every provider name the sandbox answers as. The OpenAI-compatible family shares handlers.
PROVIDERS = (
    "anthropic",
    "openai",
    "groq",
    "deepseek",
    "gemini",
    "stripe",
    "tmdb",
    "wikipedia",
    "sendgrid",
    "posthog",
    "google",
    "apple",
    "facebook",
    "genai",
    "replicate",
    "expo",
)
OPENAI_FAMILY = ("openai", "groq", "deepseek", "gemini")

MAX_RECORDED_REQUESTS = 5000

_ALNUM = string.ascii_letters + string.digits


# ----------------------------------------------------------------------------------------------
# JSON helpers
# ----------------------------------------------------------------------------------------------


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class JSON(JSONResponse):
    """Compact JSON like the real APIs send (no spaces), UTF-8."""

    def render(self, content: Any) -> bytes:
        return dumps(content)


# ----------------------------------------------------------------------------------------------
# Faults and latency
# ----------------------------------------------------------------------------------------------


@dataclass
class Fault:
    """One injected failure. ``count`` is how many matching requests it hits (``None``: until cleared)."""

    id: str
    provider: str
    status: int | None = None
    count: int | None = 1
    path: str | None = None  # substring of the provider-relative path, e.g. "/v1/messages"
    method: str | None = None
    delay_seconds: float = 0.0
    retry_after: float | None = None
    message: str | None = None
    error_type: str | None = None
    after_chunks: int | None = None  # streaming only: fail after N content chunks
    drop_connection: bool = False
    hits: int = 0

    def matches(self, provider: str, method: str, path: str, streaming: bool) -> bool:
        if self.provider not in (provider, "*"):
            return False
        if self.count is not None and self.count <= 0:
            return False
        if self.method and self.method.upper() != method.upper():
            return False
        if self.path and self.path not in path:
            return False
        if self.after_chunks is not None and not streaming:
            return False
        return True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


FAULT_FIELDS = {
    "provider",
    "status",
    "count",
    "path",
    "method",
    "delay_seconds",
    "retry_after",
    "message",
    "error_type",
    "after_chunks",
    "drop_connection",
}


@dataclass
class Latency:
    first_token_seconds: float = 0.0
    per_token_seconds: float = 0.0
    request_seconds: float = 0.0


@dataclass
class SandboxState:
    """Everything a running sandbox remembers; ``reset()`` forgets it (OAuth keys survive)."""

    seed: int = 0
    rng: random.Random = field(init=False)
    faults: list[Fault] = field(default_factory=list)
    requests: deque = field(default_factory=lambda: deque(maxlen=MAX_RECORDED_REQUESTS))
    latency: dict[str, Latency] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    emails: list[dict[str, Any]] = field(default_factory=list)
    posthog_events: list[dict[str, Any]] = field(default_factory=list)
    transcripts: deque = field(default_factory=deque)
    stores: dict[str, Any] = field(default_factory=dict)
    base_url: str = ""  # set by the server when known; used for URLs the sandbox hands out
    _fault_ids: Any = field(init=False)
    _request_ids: Any = field(init=False)
    _resetters: list[Callable[[SandboxState], None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self._fault_ids = itertools.count(1)
        self._request_ids = itertools.count(1)

    # -- ids ----------------------------------------------------------------------------------
    def rand(self, n: int, alphabet: str = _ALNUM) -> str:
        return "".join(self.rng.choice(alphabet) for _ in range(n))

    # -- reset --------------------------------------------------------------------------------
    def on_reset(self, fn: Callable[[SandboxState], None]) -> None:
        self._resetters.append(fn)
        fn(self)

    def reset(self) -> None:
        self.rng = random.Random(self.seed)
        self.faults.clear()
        self.requests.clear()
        self.latency.clear()
        self.config.clear()
        self.emails.clear()
        self.posthog_events.clear()
        self.transcripts.clear()
        self._fault_ids = itertools.count(1)
        self._request_ids = itertools.count(1)
        for fn in self._resetters:
            fn(self)

    # -- faults -------------------------------------------------------------------------------
    def add_fault(self, spec: dict[str, Any]) -> Fault:
        unknown = set(spec) - FAULT_FIELDS
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        provider = spec.get("provider")
        if provider != "*" and provider not in PROVIDERS:
            raise ValueError(f"provider must be one of {list(PROVIDERS)} or '*'")
        fault = Fault(id=f"flt_{next(self._fault_ids)}", **spec)
        if fault.status is None and not fault.delay_seconds and not fault.drop_connection:
            raise ValueError("a fault needs a status, a delay_seconds or drop_connection")
        self.faults.append(fault)
        return fault

    def take_fault(self, provider: str, method: str, path: str, streaming: bool) -> Fault | None:
        for fault in self.faults:
            if fault.matches(provider, method, path, streaming):
                fault.hits += 1
                if fault.count is not None:
                    fault.count -= 1
                return fault
        return None

    # -- latency ------------------------------------------------------------------------------
    def latency_for(self, provider: str) -> Latency:
        return self.latency.get(provider) or self.latency.get("*") or Latency()

    # -- requests -----------------------------------------------------------------------------
    def record(self, provider: str, scope: dict, path: str, body: Any) -> dict[str, Any]:
        headers: dict[str, str] = {}
        for raw_k, raw_v in scope.get("headers", []):
            k = raw_k.decode("latin-1").lower()
            v = raw_v.decode("latin-1")
            headers[k] = mask_secret(v) if k in SECRET_HEADERS else v
        query_string = scope.get("query_string", b"").decode("latin-1")
        entry = {
            "id": next(self._request_ids),
            "provider": provider,
            "method": scope["method"],
            "path": path,
            "query": parse_stripe_form(query_string) if query_string else {},
            "headers": headers,
            "body": recordable(body),
            "status": None,
            "fault": None,
            "time": time.time(),
        }
        self.requests.append(entry)
        return entry

    def find_requests(
        self,
        provider: str | None = None,
        path: str | None = None,
        method: str | None = None,
        since: int | None = None,
    ) -> list[dict[str, Any]]:
        out = []
        for r in self.requests:
            if provider and r["provider"] != provider:
                continue
            if path and path not in r["path"]:
                continue
            if method and r["method"] != method.upper():
                continue
            if since is not None and r["id"] <= since:
                continue
            out.append(r)
        return out


# ----------------------------------------------------------------------------------------------
# Errors in each provider's own shape
# ----------------------------------------------------------------------------------------------

ErrorRenderer = Callable[..., Response]
ERROR_RENDERERS: dict[str, ErrorRenderer] = {}


def register_error_renderer(*providers: str) -> Callable[[ErrorRenderer], ErrorRenderer]:
    def deco(fn: ErrorRenderer) -> ErrorRenderer:
        for p in providers:
            ERROR_RENDERERS[p] = fn
        return fn

    return deco


def render_error(
    provider: str,
    status: int,
    message: str | None = None,
    error_type: str | None = None,
    retry_after: float | None = None,
) -> Response:
    renderer = ERROR_RENDERERS.get(provider)
    if renderer is None:
        resp: Response = JSON({"error": {"status": status, "message": message or "sandbox fault"}}, status_code=status)
    else:
        resp = renderer(status=status, message=message, error_type=error_type)
    if retry_after is not None:
        resp.headers["retry-after"] = str(int(retry_after) if float(retry_after).is_integer() else retry_after)
    resp.headers["x-sandbox-fault"] = "true"
    return resp


# ----------------------------------------------------------------------------------------------
# The per-provider wrapper
# ----------------------------------------------------------------------------------------------


class StreamCut(Exception):
    """Raised inside a streaming generator to cut the connection mid-response."""


class ProviderApp:
    """ASGI wrapper: record, inject faults, then hand over to the provider's app."""

    def __init__(self, provider: str, app: Any, state: SandboxState):
        self.provider = provider
        self.app = app
        self.state = state

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        chunks = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        content_type = ""
        for k, v in scope.get("headers", []):
            if k == b"content-type":
                content_type = v.decode("latin-1")
        parsed = parse_body(body, content_type)
        root = scope.get("root_path", "")
        path = scope["path"][len(root) :] if root and scope["path"].startswith(root) else scope["path"]
        record = self.state.record(self.provider, scope, path, parsed)
        streaming = isinstance(parsed, dict) and parsed.get("stream") is True
        fault = self.state.take_fault(self.provider, scope["method"], path, streaming)
        if fault:
            record["fault"] = fault.id
        scope["sandbox"] = {
            "provider": self.provider,
            "state": self.state,
            "body": body,
            "parsed": parsed,
            "fault": fault,
            "record": record,
        }

        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        async def send_recorded(message: dict) -> None:
            if message["type"] == "http.response.start":
                record["status"] = message["status"]
            await send(message)

        lat = self.state.latency_for(self.provider)
        if lat.request_seconds:
            await asyncio.sleep(lat.request_seconds)
        if fault is not None and fault.after_chunks is None:
            if fault.delay_seconds:
                await asyncio.sleep(fault.delay_seconds)
            if fault.drop_connection:
                # start an answer, then stop: uvicorn closes the connection mid-response
                await send_recorded(
                    {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1024")]}
                )
                await send({"type": "http.response.body", "body": b'{"partial":', "more_body": True})
                return
            if fault.status is not None:
                resp = render_error(self.provider, fault.status, fault.message, fault.error_type, fault.retry_after)
                await resp(scope, replay, send_recorded)
                return
        try:
            await self.app(scope, replay, send_recorded)
        except StreamCut:
            return  # response left incomplete on purpose: the client sees the connection cut


def sandbox_scope(request: Request) -> dict[str, Any]:
    return request.scope["sandbox"]


def stream_fault(request: Request) -> Fault | None:
    """The fault that applies to this streaming response (``after_chunks`` set), if any."""
    fault = request.scope["sandbox"]["fault"]
    if fault is not None and fault.after_chunks is not None:
        return fault
    return None


def bearer_token(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def now() -> int:
    return int(time.time())
