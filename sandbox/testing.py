"""Run a sandbox inside the test process: ``start_sandbox_in_thread(port=0) -> SandboxHandle``.

uvicorn serves the app in a daemon thread (its own event loop) on 127.0.0.1; the call returns
once the server accepts connections. Typical pytest wrapping::

    @pytest.fixture(scope="session")
    def sandbox():
        handle = start_sandbox_in_thread()
        yield handle
        handle.stop()

``handle.base_url`` (``http://127.0.0.1:PORT``), ``handle.env()`` (the ``*_BASE_URL`` variables of
:func:`sandbox.control.env_for`; ``env(keys=True)`` adds dummy API keys, ``STRIPE_WEBHOOK_SECRET``
and the seeded ``STRIPE_PRICE_PRO`` / ``STRIPE_PRICE_MAX``), ``handle.control`` (the ``/_sandbox`` API,
sync calls - safe from async tests too, since the server runs on its own loop), ``handle.state`` (the live
:class:`~sandbox.core.SandboxState`, same process), ``handle.stop()``.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn

from .app import create_app
from .control import env_for
from .core import SandboxState
from .stripe_api import DEFAULT_WEBHOOK_SECRET

DUMMY_KEYS = {
    "ANTHROPIC_API_KEY": "sk-ant-sandbox-key",
    "OPENAI_API_KEY": "sk-sandbox-openai-key",
    "GROQ_API_KEY": "gsk_sandbox_key",
    "DEEPSEEK_API_KEY": "sk-sandbox-deepseek-key",
    "GEMINI_API_KEY": "sandbox-gemini-key",
    "STRIPE_SECRET_KEY": "sk_test_sandbox_0000000000000000",
    "STRIPE_WEBHOOK_SECRET": DEFAULT_WEBHOOK_SECRET,
    "STRIPE_PRICE_PRO": "price_sandbox_pro_monthly",
    "STRIPE_PRICE_MAX": "price_sandbox_max_monthly",
    "TMDB_API_KEY": "sandbox0tmdb0key0000000000000000",
    "SENDGRID_API_KEY": "SG.sandbox.key",
    "VERTEX_API_KEY": "sandbox-vertex-key",
    "REPLICATE_API_TOKEN": "r8_sandbox_token",
}


class Control:
    """Sync client for ``/_sandbox`` (see :mod:`sandbox.control` for what each call does)."""

    def __init__(self, base_url: str):
        self.base_url = base_url
        self.http = httpx.Client(base_url=base_url, timeout=30.0, trust_env=False)

    def _call(self, method: str, path: str, **kw: Any) -> Any:
        r = self.http.request(method, path, **kw)
        r.raise_for_status()
        return r.json()

    def reset(self) -> None:
        self._call("POST", "/_sandbox/reset")

    def fault(self, provider: str, status: int | None = None, count: int | None = 1, **kw: Any) -> dict:
        """Add a fault: ``fault("anthropic", 529, count=2)``, ``fault("openai", delay_seconds=5)``,
        ``fault("anthropic", 529, after_chunks=3)`` (stream error), ``fault("tmdb", 429, retry_after=2)``."""
        return self._call(
            "POST", "/_sandbox/faults", json={"provider": provider, "status": status, "count": count, **kw}
        )

    def faults(self) -> list[dict]:
        return self._call("GET", "/_sandbox/faults")["data"]

    def clear_faults(self) -> None:
        self._call("DELETE", "/_sandbox/faults")

    def latency(self, provider: str = "*", **kw: float) -> dict:
        """``latency("anthropic", per_token_seconds=0.01, first_token_seconds=0.2)``."""
        return self._call("POST", "/_sandbox/latency", json={"provider": provider, **kw})

    def requests(
        self,
        provider: str | None = None,
        path: str | None = None,
        method: str | None = None,
        since: int | None = None,
    ) -> list[dict]:
        params = {
            k: v
            for k, v in {"provider": provider, "path": path, "method": method, "since": since}.items()
            if v is not None
        }
        return self._call("GET", "/_sandbox/requests", params=params)["data"]

    def emails(self, to: str | None = None) -> list[dict]:
        return self._call("GET", "/_sandbox/emails", params={"to": to} if to else {})["data"]

    def config(self, **kw: Any) -> dict:
        return self._call("POST", "/_sandbox/config", json=kw)

    def queue_transcripts(self, *texts: str) -> None:
        self._call("POST", "/_sandbox/transcripts", json={"texts": list(texts)})

    # Stripe
    def stripe_complete_checkout(self, session_id: str, **kw: Any) -> dict:
        return self._call("POST", f"/_sandbox/stripe/checkout/sessions/{session_id}/complete", json=kw)

    def stripe_subscription(self, subscription_id: str, action: str, **kw: Any) -> dict:
        """``action``: renew, payment_failed, pause, resume, cancel, refund, trial_end."""
        return self._call("POST", f"/_sandbox/stripe/subscriptions/{subscription_id}/{action}", json=kw)

    def stripe_webhook_endpoint(
        self, url: str, secret: str = DEFAULT_WEBHOOK_SECRET, enabled_events: list[str] | None = None
    ) -> dict:
        return self._call(
            "POST",
            "/_sandbox/stripe/webhook_endpoints",
            json={"url": url, "secret": secret, "enabled_events": enabled_events or ["*"]},
        )

    def stripe_deliveries(self) -> list[dict]:
        return self._call("GET", "/_sandbox/stripe/deliveries")["data"]

    def stripe_redeliver(self, event_id: str) -> dict:
        return self._call("POST", f"/_sandbox/stripe/events/{event_id}/deliver")

    # TMDB, OAuth
    def tmdb(self, synthetic_movies: int | None = None, synthetic_tv: int | None = None) -> dict:
        spec = {
            k: v
            for k, v in {"synthetic_movies": synthetic_movies, "synthetic_tv": synthetic_tv}.items()
            if v is not None
        }
        return self._call("POST", "/_sandbox/tmdb", json=spec)

    def mint_id_token(self, **kw: Any) -> str:
        return self._call("POST", "/_sandbox/oauth/id_token", json=kw)["id_token"]

    def facebook_token(self, token: str, user_id: str, **kw: Any) -> dict:
        return self._call("POST", "/_sandbox/oauth/facebook/tokens", json={"token": token, "user_id": user_id, **kw})

    def expo(self, **kw: Any) -> dict:
        """Expo push: ``down=True|False``, ``unregistered=[token]``, ``unregistered_on_receipt=[token]``."""
        return self._call("POST", "/_sandbox/expo", json=kw)

    def expo_messages(self, to: str | None = None) -> list[dict]:
        return self._call("GET", "/_sandbox/expo/messages", params={"to": to} if to else None)["data"]

    def close(self) -> None:
        self.http.close()


@dataclass
class SandboxHandle:
    base_url: str
    port: int
    state: SandboxState
    control: Control
    _server: uvicorn.Server
    _thread: threading.Thread

    def env(self, keys: bool = False) -> dict[str, str]:
        """The ``*_BASE_URL`` / JWKS / Graph variables pointing at this sandbox; with ``keys=True`` also
        dummy API keys, ``STRIPE_WEBHOOK_SECRET`` and the seeded ``STRIPE_PRICE_PRO/MAX``."""
        env = env_for(self.base_url)
        if keys:
            env.update(DUMMY_KEYS)
        return env

    def url(self, provider_path: str) -> str:
        return self.base_url + provider_path

    def stop(self, timeout: float = 10.0) -> None:
        self.control.close()
        self._server.should_exit = True
        self._thread.join(timeout)


def start_sandbox_in_thread(
    port: int = 0, host: str = "127.0.0.1", state: SandboxState | None = None, timeout: float = 15.0
) -> SandboxHandle:
    """Serve a fresh sandbox app on ``host:port`` (0 = a free port) in a daemon thread."""
    state = state or SandboxState()
    app = create_app(state)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    real_port = sock.getsockname()[1]
    base_url = f"http://{host}:{real_port}"
    state.base_url = base_url
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="off", loop="asyncio", timeout_graceful_shutdown=2
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=f"sandbox-{real_port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("sandbox server thread died during start-up")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise TimeoutError(f"sandbox did not start within {timeout}s")
        time.sleep(0.01)
    return SandboxHandle(base_url, real_port, state, Control(base_url), server, thread)
