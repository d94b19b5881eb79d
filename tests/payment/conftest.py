"""Payment test fixtures: the service in-process against real PostgreSQL/Redis/RabbitMQ and the
sandbox's Stripe server, plus helpers to post signed Stripe and RevenueCat webhooks."""

from __future__ import annotations

import uuid

import pytest
import pytest_asyncio

from sandbox import stripe_events as se
from sandbox.stripe_api import DEFAULT_WEBHOOK_SECRET

WEBHOOK_SECRET = DEFAULT_WEBHOOK_SECRET
PRICE_PRO = "price_sandbox_pro_monthly"
PRICE_MAX = "price_sandbox_max_monthly"
RC_AUTH = "Bearer rc-test-secret-0123456789"


def payment_env(sandbox) -> dict[str, str]:
    return {
        "stripe_api_key": "sk_test_sandbox_0000000000000000",
        "stripe_webhook_secret": WEBHOOK_SECRET,
        "stripe_api_base": sandbox.env()["STRIPE_API_BASE"],
        "stripe_price_pro": PRICE_PRO,
        "stripe_price_max": PRICE_MAX,
        "stripe_max_network_retries": "0",
        "stripe_timeout_seconds": "5",
        "revenuecat_webhook_auth": RC_AUTH,
        "revenuecat_entitlement_tiers": '{"pro": 1, "max": 2}',
        "payment_grace_days": "3",
        "frontend_url": "https://app.scenextras.test",
        "sweep_interval_seconds": "0",
    }


@pytest.fixture(scope="session")
def sandbox_required(sandbox):
    if sandbox is None:
        pytest.fail("the sandbox package is required for the payment tests")
    return sandbox


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def client(make_client, sandbox_required):
    async with make_client("payment", **payment_env(sandbox_required)) as c:
        yield c


@pytest.fixture
def db(client):
    return client.app.state.core_db


class Users:
    def __init__(self, tokens):
        self.tokens = tokens

    def new(self, tier: int = 0) -> tuple[str, dict[str, str]]:
        user_id = str(uuid.uuid4())
        return user_id, self.tokens.headers(self.tokens.user(user_id, tier=tier))


@pytest.fixture
def users(tokens):
    return Users(tokens)


async def post_stripe(
    client, event: dict, *, secret: str = WEBHOOK_SECRET, timestamp: int | None = None, path: str = "/webhook"
):
    body, headers = se.signed_webhook(event, secret, timestamp)
    return await client.post(path, content=body, headers=headers)


async def post_revenuecat(client, event: dict, auth: str | None = RC_AUTH):
    headers = {"Content-Type": "application/json"}
    if auth is not None:
        headers["Authorization"] = auth
    return await client.post("/webhooks/revenuecat", json={"api_version": "1.0", "event": event}, headers=headers)
