"""Local servers speaking the real wire protocols of SceneXtras' external APIs (Anthropic, OpenAI and
its compatibles, Stripe, TMDB, Wikipedia, SendGrid, Google/Apple OIDC, Facebook Graph).

Not the real providers: tests and the keyless local fleet point their base URLs here. See README.md.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app", "start_sandbox_in_thread", "SandboxHandle", "mint_id_token", "sign_stripe_payload"]


def __getattr__(name: str) -> Any:  # lazy: importing `sandbox` stays cheap
    if name == "create_app":
        from .app import create_app

        return create_app
    if name in ("start_sandbox_in_thread", "SandboxHandle"):
        from . import testing

        return getattr(testing, name)
    if name == "mint_id_token":
        from .oauth import mint_id_token

        return mint_id_token
    if name == "sign_stripe_payload":
        from .stripe_events import sign_stripe_payload

        return sign_stripe_payload
    raise AttributeError(name)
