"""The Expo push sandbox speaks the protocol the official `exponent-server-sdk` expects: tickets,
DeviceNotRegistered at send and in receipts, request errors, and an outage on demand."""

from __future__ import annotations

import pytest
import requests
from exponent_server_sdk import (
    DeviceNotRegisteredError,
    PushClient,
    PushMessage,
    PushServerError,
    PushTicket,
)

OK = "ExponentPushToken[sandbox-ok-0001]"
GONE = "ExponentPushToken[sandbox-gone-0002]"
GONE_LATER = "ExponentPushToken[sandbox-gone-later-03]"


@pytest.fixture
def client(sandbox) -> PushClient:
    return PushClient(host=sandbox.base_url, api_url="/expo/--/api/v2", timeout=5)


def test_send_tickets_and_receipts_through_the_sdk(sandbox, client):
    sandbox.control.expo(unregistered=[GONE], unregistered_on_receipt=[GONE_LATER])
    tickets = client.publish_multiple(
        [PushMessage(to=t, title="Hi", body="There", data={"n": i}) for i, t in enumerate((OK, GONE, GONE_LATER))]
    )
    assert [t.status for t in tickets] == ["ok", "error", "ok"]
    tickets[0].validate_response()
    with pytest.raises(DeviceNotRegisteredError):
        tickets[1].validate_response()
    receipts = {r.id: r for r in client.check_receipts_multiple([tickets[0], tickets[2]])}
    receipts[tickets[0].id].validate_response()
    with pytest.raises(DeviceNotRegisteredError):
        receipts[tickets[2].id].validate_response()
    # Unknown ticket ids have no receipt (yet), as Expo answers.
    assert client.check_receipts_multiple([PushTicket(None, "ok", "", None, "no-such-id")]) == []
    messages = sandbox.control.expo_messages()
    assert [(m["to"], m["title"], m["data"]) for m in messages] == [(OK, "Hi", {"n": 0}), (GONE_LATER, "Hi", {"n": 2})]
    assert sandbox.control.expo_messages(to=OK)[0]["body"] == "There"


def test_down_and_request_errors(sandbox, client):
    sandbox.control.expo(down=True)
    with pytest.raises(PushServerError) as down:
        client.publish(PushMessage(to=OK, body="x"))
    assert down.value.response.status_code == 503 and down.value.errors[0]["code"] == "INTERNAL_SERVER_ERROR"
    sandbox.control.expo(down=False)
    assert client.publish(PushMessage(to=OK, body="x")).is_success()
    with pytest.raises(PushServerError) as too_many:
        client.publish_multiple.__func__(  # the SDK chunks by 100: send 101 in one request on purpose
            type("C", (), {"max_message_count": 101, "_publish_internal": client._publish_internal})(),
            [PushMessage(to=OK, body=str(i)) for i in range(101)],
        )
    assert too_many.value.errors[0]["code"] == "PUSH_TOO_MANY_NOTIFICATIONS"
    r = requests.post(f"{sandbox.base_url}/expo/--/api/v2/push/send", json=[{"body": "no recipient"}], timeout=5)
    assert r.status_code == 400 and r.json()["errors"][0]["code"] == "VALIDATION_ERROR"
    # The generic faults apply too.
    sandbox.control.fault("expo", status=500, count=1)
    with pytest.raises(PushServerError):
        client.publish(PushMessage(to=OK, body="x"))
