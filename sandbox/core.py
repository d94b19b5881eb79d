"""Shared machinery of the sandbox: state, request recording, fault injection, body parsing.

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
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

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
MAX_RECORDED_STRING = 2000

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
# Body parsing
# ----------------------------------------------------------------------------------------------


def _split_form_key(key: str) -> list[str]:
    """``line_items[0][price]`` -> ``["line_items", "0", "price"]``; ``expand[]`` -> ``["expand", ""]``."""
    if "[" not in key or not key.endswith("]"):
        return [key]
    base, _, rest = key.partition("[")
    parts = [base]
    for piece in rest[:-1].split("]["):
        parts.append(piece)
    return parts


def _listify(node: Any) -> Any:
    if isinstance(node, dict):
        node = {k: _listify(v) for k, v in node.items()}
        if node and all(isinstance(k, str) and k.isdigit() for k in node):
            return [node[k] for k in sorted(node, key=int)]
        return node
    if isinstance(node, list):
        return [_listify(v) for v in node]
    return node


def parse_stripe_form(body: str) -> dict[str, Any]:
    """Decode a form body (or query string) the way Stripe does.

    ``metadata[user_id]=u1`` -> ``{"metadata": {"user_id": "u1"}}``;
    ``line_items[0][price]=p&line_items[0][quantity]=1`` -> ``{"line_items": [{"price": "p", "quantity": "1"}]}``;
    ``expand[]=a&expand[]=b`` -> ``{"expand": ["a", "b"]}``. Values stay strings (Stripe coerces per
    parameter); an empty value (``metadata[k]=``) stays ``""``, which Stripe reads as "unset".
    """
    root: dict[str, Any] = {}
    for key, value in parse_qsl(body, keep_blank_values=True):
        parts = _split_form_key(key)
        node: Any = root
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if part == "":  # key[] -> append
                if not isinstance(node, list):
                    break
                if last:
                    node.append(value)
                else:
                    node.append({})
                    node = node[-1]
                continue
            nxt_is_append = not last and parts[i + 1] == ""
            if isinstance(node, list):  # can only happen after [] with nested keys; keep simple
                break
            if last:
                node[part] = value
            else:
                if part not in node or not isinstance(node[part], (dict, list)):
                    node[part] = [] if nxt_is_append else {}
                node = node[part]
    return _listify(root)


@dataclass
class UploadedFile:
    filename: str
    content_type: str
    data: bytes

    def summary(self) -> dict[str, Any]:
        return {"filename": self.filename, "content_type": self.content_type, "size": len(self.data)}


def _header_params(value: str) -> tuple[str, dict[str, str]]:
    main, *rest = value.split(";")
    params: dict[str, str] = {}
    for item in rest:
        if "=" in item:
            k, v = item.split("=", 1)
            v = v.strip()
            if len(v) >= 2 and v[0] == v[-1] == '"':
                v = v[1:-1]
            params[k.strip().lower()] = v
    return main.strip().lower(), params


def parse_multipart(body: bytes, content_type: str) -> dict[str, Any]:
    """A small multipart/form-data parser (the sandbox has no python-multipart).

    Returns ``{name: str | UploadedFile}``; a name sent several times becomes a list.
    """
    _, params = _header_params(content_type)
    boundary = params.get("boundary")
    if not boundary:
        raise ValueError("multipart body without boundary")
    delim = b"--" + boundary.encode("latin-1")
    out: dict[str, Any] = {}
    for chunk in body.split(delim)[1:]:
        if chunk.startswith(b"--"):
            break
        if chunk.startswith(b"\r\n"):
            chunk = chunk[2:]
        head, sep, data = chunk.partition(b"\r\n\r\n")
        if not sep:
            continue
        if data.endswith(b"\r\n"):
            data = data[:-2]
        headers: dict[str, str] = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        _, disp = _header_params(headers.get("content-disposition", ""))
        name = disp.get("name")
        if name is None:
            continue
        value: Any
        if "filename" in disp:
            value = UploadedFile(disp["filename"], headers.get("content-type", "application/octet-stream"), data)
        else:
            value = data.decode("utf-8", "replace")
        if name in out:
            prev = out[name]
            out[name] = (prev if isinstance(prev, list) else [prev]) + [value]
        else:
            out[name] = value
    return out


def parse_body(body: bytes, content_type: str) -> Any:
    """Parse a request body by its content type; ``None`` when empty, raw text when unparseable."""
    if not body:
        return None
    ctype = (content_type or "").split(";")[0].strip().lower()
    try:
        if ctype == "application/json" or ctype.endswith("+json"):
            return json.loads(body)
        if ctype == "application/x-www-form-urlencoded":
            return parse_stripe_form(body.decode("utf-8"))
        if ctype == "multipart/form-data":
            return parse_multipart(body, content_type)
    except (ValueError, UnicodeDecodeError):
        return {"_unparseable": body[:MAX_RECORDED_STRING].decode("utf-8", "replace")}
    try:
        return json.loads(body)
    except ValueError:
        return body[:MAX_RECORDED_STRING].decode("utf-8", "replace")


def _recordable(value: Any) -> Any:
    """A copy safe to keep in memory and to send as JSON: long strings cut, files summarised."""
    if isinstance(value, UploadedFile):
        return value.summary()
    if isinstance(value, str):
        if len(value) > MAX_RECORDED_STRING:
            return value[:MAX_RECORDED_STRING] + f"...[{len(value)} chars]"
        return value
    if isinstance(value, dict):
        return {k: _recordable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_recordable(v) for v in value]
    return value


_SECRET_HEADERS = {"authorization", "x-api-key", "x-goog-api-key"}


def _mask(value: str) -> str:
    scheme, sep, token = value.partition(" ")
    if not sep:
        scheme, token = "", value
    shown = token[:12] + "..." if len(token) > 16 else token
    return f"{scheme} {shown}".strip() if scheme else shown


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
            headers[k] = _mask(v) if k in _SECRET_HEADERS else v
        query_string = scope.get("query_string", b"").decode("latin-1")
        entry = {
            "id": next(self._request_ids),
            "provider": provider,
            "method": scope["method"],
            "path": path,
            "query": parse_stripe_form(query_string) if query_string else {},
            "headers": headers,
            "body": _recordable(body),
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
