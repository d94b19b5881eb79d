"""Forwarding to PostHog through the official SDK, against the sandbox's capture endpoint: every
first-time event once with its own id as PostHog's uuid, the user as distinct_id, no email."""

import asyncio
import uuid
from datetime import UTC, datetime

import httpx
import pytest

from tests.analytics.conftest import event

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_events_reach_posthog_once_without_personal_data(analytics, bus, sandbox, new_user):
    if sandbox is None:
        pytest.skip("the sandbox package is not importable")
    user = new_user()
    now = datetime.now(UTC)
    events = [
        event("user.created", user.id, {"email": "someone@example.com", "is_guest": False}, at=now),
        event("message.sent", user.id, {"sender": "Frodo", "conversation_id": str(uuid.uuid4())}, at=now),
        event("quota.consumed", None, {"kind": "messages"}, at=now),
    ]
    await bus.publish(*events)
    await bus.publish(events[1])  # redelivered: forwarded once (the consumer applies it once)
    await bus.applied(*events)
    control = sandbox.env()["POSTHOG_HOST"].removesuffix("/posthog") + "/_sandbox/posthog"
    ids = {e.event_id for e in events}
    deadline = asyncio.get_running_loop().time() + 20  # the SDK flushes every 5 s
    async with httpx.AsyncClient() as http:
        while True:
            seen = [e for e in (await http.get(control)).json()["data"] if e.get("uuid") in ids]
            if len(seen) >= 3 or asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.25)
        await asyncio.sleep(0.5)
        seen = [e for e in (await http.get(control)).json()["data"] if e.get("uuid") in ids]
    assert sorted(e["uuid"] for e in seen) == sorted(ids)
    by_type = {e["event"]: e for e in seen}
    assert by_type["user.created"]["distinct_id"] == user.id
    assert "email" not in by_type["user.created"]["properties"]
    assert by_type["message.sent"]["properties"]["sender"] == "Frodo"
    assert by_type["quota.consumed"]["distinct_id"] == "service:tests"
    assert all(e["api_key"] == "phc_sandbox_test" for e in seen)
