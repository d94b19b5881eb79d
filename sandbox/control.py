"""The control API under ``/_sandbox`` (tests and operators, never the services).

=====================================  ============================================================
``GET    /_sandbox``                   what is served where
``POST   /_sandbox/reset``             forget requests, faults, latency, emails, Stripe objects, ...
``POST   /_sandbox/faults``            add a fault (object or list); 201 with its id
``GET    /_sandbox/faults``            active and used-up faults, with hit counts
``DELETE /_sandbox/faults[/{id}]``     clear all / one
``POST   /_sandbox/latency``           ``{"provider": "anthropic"|"*", "first_token_seconds",
                                       "per_token_seconds", "request_seconds"}``
``DELETE /_sandbox/latency``           back to no latency
``GET    /_sandbox/requests``          recorded requests; filters ``provider``, ``path``, ``method``,
                                       ``since`` (request id), ``limit`` (last N)
``DELETE /_sandbox/requests``          forget them
``GET    /_sandbox/emails``            SendGrid messages; filter ``to``
``GET    /_sandbox/posthog``           PostHog events captured; filter ``distinct_id``, ``event``
``POST   /_sandbox/expo``              Expo push: ``{"down", "unregistered", "unregistered_on_receipt"}``
``GET    /_sandbox/expo/messages``     Expo push messages accepted; filter ``to``
``POST   /_sandbox/config``            ``{"tag_replies": true}`` appends ``[via <provider>]`` to replies
``POST   /_sandbox/transcripts``       ``{"texts": [...]}``: next transcriptions answer these, in order
=====================================  ============================================================

A fault is ``{"provider", "status"?, "count"? (default 1, null = until cleared), "path"?, "method"?,
"delay_seconds"?, "retry_after"?, "message"?, "error_type"?, "after_chunks"?, "drop_connection"?}``:
``status`` answers with that status in the provider's error shape; ``delay_seconds`` waits first
(alone it only slows the request: use it to force client timeouts); ``after_chunks`` (streams only)
fails after N content chunks with an in-stream error (or cuts the connection with
``drop_connection``); ``drop_connection`` alone cuts the connection mid-response.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .core import JSON, PROVIDERS, Latency, SandboxState

PREFIXES = {
    "anthropic": "/anthropic",
    "openai": "/openai/v1",
    "groq": "/groq/openai/v1",
    "deepseek": "/deepseek/v1",
    "gemini": "/gemini/v1beta/openai",
    "stripe": "/stripe",
    "tmdb": "/tmdb/3",
    "wikipedia": "/wikipedia/api/rest_v1",
    "sendgrid": "/sendgrid",
    "posthog": "/posthog",
    "google": "/oauth/google",
    "apple": "/oauth/apple",
    "facebook": "/oauth/facebook",
    "genai": "/genai",
    "replicate": "/replicate",
    "expo": "/expo",
}


def env_for(base_url: str) -> dict[str, str]:
    """The environment a service needs to talk to a sandbox at ``base_url`` instead of the providers."""
    b = base_url.rstrip("/")
    return {
        "ANTHROPIC_BASE_URL": f"{b}/anthropic",
        "OPENAI_BASE_URL": f"{b}/openai/v1",
        "GROQ_BASE_URL": f"{b}/groq/openai/v1",
        "DEEPSEEK_BASE_URL": f"{b}/deepseek/v1",
        "GEMINI_BASE_URL": f"{b}/gemini/v1beta/openai",
        "STRIPE_API_BASE": f"{b}/stripe",
        "TMDB_BASE_URL": f"{b}/tmdb/3",
        "WIKIPEDIA_BASE_URL": f"{b}/wikipedia/api/rest_v1",
        "SENDGRID_BASE_URL": f"{b}/sendgrid",
        "POSTHOG_HOST": f"{b}/posthog",
        "GOOGLE_JWKS_URL": f"{b}/oauth/google/jwks",
        "APPLE_JWKS_URL": f"{b}/oauth/apple/jwks",
        "FACEBOOK_GRAPH_URL": f"{b}/oauth/facebook",
        # Image generation (media): Gemini API and Vertex AI (Imagen) forms on one mount; Replicate.
        "GEMINI_GENAI_BASE_URL": f"{b}/genai",
        "VERTEX_BASE_URL": f"{b}/genai",
        "REPLICATE_BASE_URL": f"{b}/replicate",
        "EXPO_PUSH_BASE_URL": f"{b}/expo/--/api/v2",
    }


async def _json(request: Request) -> Any:
    body = await request.body()
    if not body:
        return {}
    import json

    return json.loads(body)


def _bad(message: str, status: int = 400) -> Response:
    return JSON({"error": message}, status_code=status)


def routes(state: SandboxState) -> list[Route]:
    async def index(request: Request) -> Response:
        base = str(request.base_url).rstrip("/")
        return JSON(
            {
                "sandbox": "SceneXtras local sandbox - NOT the real providers",
                "providers": {p: base + prefix for p, prefix in PREFIXES.items()},
                "env": env_for(base),
                "control": base + "/_sandbox",
            }
        )

    async def reset(request: Request) -> Response:
        state.reset()
        return JSON({"reset": True})

    async def add_faults(request: Request) -> Response:
        try:
            spec = await _json(request)
            specs = spec if isinstance(spec, list) else [spec]
            faults = [state.add_fault(s) for s in specs]
        except (ValueError, TypeError) as e:
            return _bad(str(e))
        out = [f.to_dict() for f in faults]
        return JSON(out if isinstance(spec, list) else out[0], status_code=201)

    async def list_faults(request: Request) -> Response:
        return JSON({"data": [f.to_dict() for f in state.faults]})

    async def clear_faults(request: Request) -> Response:
        fid = request.path_params.get("fault_id")
        if fid:
            before = len(state.faults)
            state.faults[:] = [f for f in state.faults if f.id != fid]
            if len(state.faults) == before:
                return _bad(f"no fault {fid}", 404)
        else:
            state.faults.clear()
        return JSON({"deleted": True})

    async def set_latency(request: Request) -> Response:
        spec = await _json(request)
        provider = spec.pop("provider", "*")
        if provider != "*" and provider not in PROVIDERS:
            return _bad(f"unknown provider {provider}")
        try:
            state.latency[provider] = Latency(**{k: float(v) for k, v in spec.items()})
        except TypeError as e:
            return _bad(str(e))
        return JSON({p: vars(lat) for p, lat in state.latency.items()})

    async def get_latency(request: Request) -> Response:
        return JSON({p: vars(lat) for p, lat in state.latency.items()})

    async def clear_latency(request: Request) -> Response:
        state.latency.clear()
        return JSON({"deleted": True})

    async def list_requests(request: Request) -> Response:
        q = request.query_params
        since = q.get("since")
        data = state.find_requests(q.get("provider"), q.get("path"), q.get("method"), int(since) if since else None)
        if q.get("limit"):
            data = data[-int(q["limit"]) :]
        return JSON({"data": data})

    async def clear_requests(request: Request) -> Response:
        state.requests.clear()
        return JSON({"deleted": True})

    async def list_emails(request: Request) -> Response:
        to = request.query_params.get("to")
        data = state.emails
        if to:
            data = [e for e in data if to.lower() in [a.lower() for a in e["to"]]]
        return JSON({"data": data})

    async def clear_emails(request: Request) -> Response:
        state.emails.clear()
        return JSON({"deleted": True})

    async def list_posthog(request: Request) -> Response:
        data = state.posthog_events
        for key in ("distinct_id", "event"):
            value = request.query_params.get(key)
            if value:
                data = [e for e in data if str(e.get(key)) == value]
        return JSON({"data": data})

    async def set_config(request: Request) -> Response:
        state.config.update(await _json(request))
        return JSON(state.config)

    async def get_config(request: Request) -> Response:
        return JSON(state.config)

    async def add_transcripts(request: Request) -> Response:
        spec = await _json(request)
        texts = spec.get("texts") or ([spec["text"]] if "text" in spec else [])
        state.transcripts.extend(str(t) for t in texts)
        return JSON({"queued": list(state.transcripts)})

    return [
        Route("/_sandbox", index, methods=["GET"]),
        Route("/_sandbox/reset", reset, methods=["POST"]),
        Route("/_sandbox/faults", add_faults, methods=["POST"]),
        Route("/_sandbox/faults", list_faults, methods=["GET"]),
        Route("/_sandbox/faults", clear_faults, methods=["DELETE"]),
        Route("/_sandbox/faults/{fault_id}", clear_faults, methods=["DELETE"]),
        Route("/_sandbox/latency", set_latency, methods=["POST"]),
        Route("/_sandbox/latency", get_latency, methods=["GET"]),
        Route("/_sandbox/latency", clear_latency, methods=["DELETE"]),
        Route("/_sandbox/requests", list_requests, methods=["GET"]),
        Route("/_sandbox/requests", clear_requests, methods=["DELETE"]),
        Route("/_sandbox/emails", list_emails, methods=["GET"]),
        Route("/_sandbox/emails", clear_emails, methods=["DELETE"]),
        Route("/_sandbox/posthog", list_posthog, methods=["GET"]),
        Route("/_sandbox/config", set_config, methods=["POST"]),
        Route("/_sandbox/config", get_config, methods=["GET"]),
        Route("/_sandbox/transcripts", add_transcripts, methods=["POST"]),
    ]
