"""Contract: the sandbox's Expo push, SendGrid mail send and PostHog capture against what the
providers publish (tests/fixtures/providers/{expo,sendgrid,posthog}, see the README there).

Expo: the request, ticket and receipt examples of its "Send notifications with Expo's Push API"
page, and its documented request error codes. SendGrid: its OpenAPI document, trimmed to
`POST /mail/send`: what shared/email.py sends validates against the request schema, the sandbox
answers 202 with no body and its errors validate against the error schema. PostHog: the batch
example of its capture API docs is accepted and kept; events without a name or distinct_id answer
200 and are not kept, as its docs say; what shared/engagement.py sends (official SDK) has the
documented shape.
"""

from __future__ import annotations

import asyncio
import json
import re
from datetime import datetime

import httpx
import jsonschema_rs
import pytest

from sandbox.testing import DUMMY_KEYS
from shared.email import Email, SendGridBackend
from shared.engagement import Engagement
from shared.events import make_event
from tests.sandbox.published import FIXTURES, errors, load, nullable_as_null_type, openapi_validator

SEND = "/expo/--/api/v2/push/send"
RECEIPTS = "/expo/--/api/v2/push/getReceipts"
EXPO_REQUEST = load("expo/push-send.request.json")
EXPO_TICKETS_OK = load("expo/push-tickets.ok.json")
EXPO_TICKETS_ERROR = load("expo/push-tickets.error.json")
# The documented receipts carry two `//` comment lines (Expo's): JSON once they are dropped.
EXPO_RECEIPTS_OK = json.loads(
    "\n".join(line for line in (FIXTURES / "expo/push-receipts.ok.jsonc").read_text().splitlines() if "//" not in line)
)
NOT_REGISTERED = re.compile(r'^"(.+)" is not a registered push notification recipient$')

SENDGRID = load("sendgrid/mail-send.trimmed.json")
POSTHOG_BATCH = load("posthog/batch.request.json")


@pytest.fixture
def http(sandbox):
    with httpx.Client(base_url=sandbox.base_url, timeout=30) as client:
        yield client


# --------------------------------------------------------------------------------------------- Expo


def recipients(messages: list[dict]) -> list[str]:
    return [t for m in messages for t in (m["to"] if isinstance(m["to"], list) else [m["to"]])]


def test_documented_request_gets_tickets_shaped_as_documented(http):
    r = http.post(SEND, json=EXPO_REQUEST)
    assert r.status_code == 200, r.text
    tickets = r.json()["data"]
    # One ticket per recipient, in order, each exactly the documented {status, id}.
    assert len(tickets) == len(recipients(EXPO_REQUEST)) == len(EXPO_TICKETS_OK["data"])
    assert [set(t) for t in tickets] == [set(t) for t in EXPO_TICKETS_OK["data"]]
    assert {t["status"] for t in tickets} == {"ok"}
    assert set(r.json()) <= {"data", "errors"}


def test_unregistered_token_gets_the_documented_error_ticket(sandbox, http):
    documented_error, documented_ok = EXPO_TICKETS_ERROR["data"]
    gone, fine = recipients(EXPO_REQUEST)[:2]
    sandbox.control.expo(unregistered=[gone])
    tickets = http.post(SEND, json=[{"to": gone, "body": "a"}, {"to": fine, "body": "b"}]).json()["data"]
    assert [t["status"] for t in tickets] == ["error", "ok"]
    error = tickets[0]
    assert set(documented_error) <= set(error) and "id" not in error
    assert error["details"]["error"] == documented_error["details"]["error"] == "DeviceNotRegistered"
    # Expo's message names the token the same way; the sandbox also gives it in details, as Expo's
    # own SDKs type it (`details.expoPushToken`).
    assert NOT_REGISTERED.match(documented_error["message"]) and NOT_REGISTERED.match(error["message"])[1] == gone
    assert set(error["details"]) <= {"error", "expoPushToken"}
    assert set(tickets[1]) == set(documented_ok)


def test_receipts_as_documented_and_unknown_ids_omitted(sandbox, http):
    tokens = recipients(EXPO_REQUEST)
    sandbox.control.expo(unregistered_on_receipt=[tokens[1]])
    ids = [t["id"] for t in http.post(SEND, json=EXPO_REQUEST).json()["data"]]
    unknown = "YYYYYYYY-YYYY-YYYY-YYYY-YYYYYYYYYYYY"
    r = http.post(RECEIPTS, json={"ids": [*ids, unknown]})
    assert r.status_code == 200
    receipts = r.json()["data"]
    assert set(receipts) == set(ids)  # "the mapping won't contain that ID"
    documented_ok = next(iter(EXPO_RECEIPTS_OK["data"].values()))
    assert receipts[ids[0]] == documented_ok == {"status": "ok"}
    assert receipts[ids[1]]["status"] == "error" and receipts[ids[1]]["details"]["error"] == "DeviceNotRegistered"
    assert NOT_REGISTERED.match(receipts[ids[1]]["message"])


def test_request_errors_carry_expos_documented_codes(http):
    too_many = http.post(SEND, json=[{"to": recipients(EXPO_REQUEST)[0], "body": str(i)} for i in range(101)])
    assert too_many.status_code == 400
    assert [e["code"] for e in too_many.json()["errors"]] == ["PUSH_TOO_MANY_NOTIFICATIONS"]
    too_many_ids = http.post(RECEIPTS, json={"ids": [f"id-{i}" for i in range(1001)]})
    assert too_many_ids.status_code == 400
    assert [e["code"] for e in too_many_ids.json()["errors"]] == ["PUSH_TOO_MANY_RECEIPTS"]
    for answer in (too_many, too_many_ids):
        assert all(isinstance(e["message"], str) and e["message"] for e in answer.json()["errors"])


# ----------------------------------------------------------------------------------------- SendGrid

SENDGRID_COMPONENTS = nullable_as_null_type(SENDGRID["components"])
SENDGRID_ERROR = openapi_validator(SENDGRID, "global_error_response_schema", components=SENDGRID_COMPONENTS)


def sendgrid_request_validator():
    schema = SENDGRID["paths"]["/mail/send"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    return jsonschema_rs.validator_for({**nullable_as_null_type(schema), "components": SENDGRID_COMPONENTS})


def test_what_shared_email_sends_fits_sendgrids_request_schema(sandbox):
    async def send():
        backend = SendGridBackend(
            api_key=DUMMY_KEYS["SENDGRID_API_KEY"],
            base_url=f"{sandbox.base_url}/sendgrid",
            sender="hello@scenextras.test",
            sender_name="SceneXtras",
            timeout=10,
        )
        try:
            await backend.send(Email("reader@example.com", "Your code", "123456", "auth.code", {"code": "123456"}))
        finally:
            await backend.close()

    asyncio.run(send())
    (sent,) = sandbox.state.emails
    assert errors(sendgrid_request_validator(), sent["body"]) == []
    (request,) = sandbox.control.requests(provider="sendgrid")
    assert request["status"] == 202


def test_sendgrid_answers_202_without_body_and_errors_in_its_schema(http):
    auth = {"Authorization": f"Bearer {DUMMY_KEYS['SENDGRID_API_KEY']}"}
    good = {
        "personalizations": [{"to": [{"email": "reader@example.com"}]}],
        "from": {"email": "hello@scenextras.test"},
        "subject": "Hi",
        "content": [{"type": "text/plain", "value": "Hello"}],
    }
    assert errors(sendgrid_request_validator(), good) == []
    accepted = http.post("/sendgrid/v3/mail/send", headers=auth, json=good)
    assert accepted.status_code == 202 and accepted.content == b""  # the document's 202 has no content
    bad = http.post("/sendgrid/v3/mail/send", headers=auth, json={"personalizations": [{"to": []}]})
    assert bad.status_code == 400 and len(bad.json()["errors"]) > 1
    assert errors(SENDGRID_ERROR, bad.json()) == []
    unauthorized = http.post("/sendgrid/v3/mail/send", json=good)
    assert unauthorized.status_code == 401
    assert errors(SENDGRID_ERROR, unauthorized.json()) == []


# ------------------------------------------------------------------------------------------ PostHog


def test_posthogs_documented_batch_is_accepted_and_kept(http):
    r = http.post("/posthog/batch/", json=POSTHOG_BATCH)
    assert r.status_code == 200
    kept = http.get("/_sandbox/posthog").json()["data"]
    documented = [(e["event"], e["properties"]["distinct_id"]) for e in POSTHOG_BATCH["batch"]]
    assert [(e["event"], e["distinct_id"]) for e in kept] == documented


def test_events_without_name_or_distinct_id_answer_200_and_are_not_kept(http):
    r = http.post(
        "/posthog/batch/",
        json={
            "api_key": "phc_sandbox",
            "batch": [
                {"event": "nameless?", "properties": {}},
                {"distinct_id": "u1"},
                {"event": "kept", "distinct_id": "u1"},
            ],
        },
    )
    assert r.status_code == 200
    assert [e["event"] for e in http.get("/_sandbox/posthog").json()["data"]] == ["kept"]


def test_what_shared_engagement_sends_has_posthogs_documented_shape(sandbox):
    engagement = Engagement("phc_sandbox", f"{sandbox.base_url}/posthog", sync_mode=True)
    engagement.capture(make_event("story.published", "6f1c2a4e-1111-4b1b-9c1c-2a4e6f1c2a4e", {"kind": "x"}), ["kind"])
    asyncio.run(engagement.close())
    (request,) = sandbox.control.requests(provider="posthog")
    body = request["body"]
    assert set(POSTHOG_BATCH) - {"historical_migration"} <= set(body)  # optional, per the docs
    documented_event = POSTHOG_BATCH["batch"][0]
    for event in body["batch"]:
        assert set(documented_event) <= set(event)
        assert event["event"] and event["distinct_id"]
        datetime.fromisoformat(event["timestamp"])  # "ISO 8601 format"
