"""One ASGI app serving every provider under its own prefix (see ``control.PREFIXES``).

``create_app()`` builds a fresh app with its own :class:`~sandbox.core.SandboxState`
(``app.state.sandbox``). ``sandbox.app:app`` is a ready-made one for ``uvicorn sandbox.app:app``.
"""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route, Router

from . import (
    anthropic_api,
    control,
    expo_push,
    images_api,
    oauth,
    openai_api,
    posthog_api,
    sendgrid_api,
    stripe_api,
    tmdb_api,
    wikipedia_api,
)
from .core import JSON, ProviderApp, SandboxState, render_error

BANNER = "SceneXtras LOCAL SANDBOX - fake Anthropic/OpenAI/Stripe/TMDB/... on this machine, NOT the real providers"


def _with_default_404(provider: str, router: Router) -> Router:
    async def not_found(scope: dict, receive: Any, send: Any) -> None:
        resp = render_error(provider, 404, f"Unrecognized request URL ({scope['method']}: {scope['path']}).")
        await resp(scope, receive, send)

    router.default = not_found
    return router


def create_app(state: SandboxState | None = None) -> Starlette:
    state = state or SandboxState()
    oauth.keyring()  # generate the signing keys now, not on the first request

    def mount(prefix: str, provider: str, router: Router) -> Mount:
        return Mount(prefix, app=ProviderApp(provider, _with_default_404(provider, router), state))

    openai_mounts = [
        mount(prefix, provider, openai_api.build(state, provider))
        for provider, prefix in (
            ("groq", "/groq/openai/v1"),
            ("openai", "/openai/v1"),
            ("deepseek", "/deepseek/v1"),
            ("gemini", "/gemini/v1beta/openai"),
        )
    ]

    async def root(request: Request) -> Response:
        return JSON({"sandbox": BANNER, "control": str(request.base_url) + "_sandbox"})

    routes = [
        Route("/", root, methods=["GET"]),
        *control.routes(state),
        *stripe_api.control_routes(state),
        *tmdb_api.control_routes(state),
        *oauth.control_routes(state),
        *expo_push.control_routes(state),
        mount("/anthropic", "anthropic", anthropic_api.build(state)),
        *openai_mounts,
        mount("/stripe", "stripe", stripe_api.build(state)),
        mount("/tmdb/3", "tmdb", tmdb_api.build(state)),
        mount("/wikipedia/api/rest_v1", "wikipedia", wikipedia_api.build(state)),
        mount("/sendgrid", "sendgrid", sendgrid_api.build(state)),
        mount("/posthog", "posthog", posthog_api.build(state)),
        mount("/oauth/google", "google", oauth.build_google(state)),
        mount("/oauth/apple", "apple", oauth.build_apple(state)),
        mount("/oauth/facebook", "facebook", oauth.build_facebook(state)),
        mount("/genai", "genai", images_api.build_google(state)),
        mount("/replicate", "replicate", images_api.build_replicate(state)),
        mount("/expo", "expo", expo_push.build(state)),
    ]
    app = Starlette(routes=routes)
    app.state.sandbox = state
    return app


def __getattr__(name: str) -> Any:
    if name == "app":
        global app
        app = create_app()
        return app
    raise AttributeError(name)
