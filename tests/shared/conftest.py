"""The schemathesis conformance test's known mismatches (tests/shared/test_openapi_conformance.py).

Each entry is an operation whose document does not yet say everything the route checks, so
schemathesis' positive_data_acceptance check (ST202: a schema-valid request answered 4xx) or
another named check still fails on it. They are marked xfail (not excluded: they still run every
check, and an operation missing from this list must pass), each with the reason, and the list only
shrinks: issue 13 stays open on it. Not strict, because a bounded number of generated examples may
miss the one input that shows the mismatch, and CI must not fail on that luck; XPASS lines in the
summary say which entries can go.
"""

from __future__ import annotations

import pytest

KNOWN_MISMATCHES = {
    "[auth][POST /verify-otp]": "a well-formed but wrong code answers 400 INVALID_CODE as API.md promises; "
    "schemathesis accepts only 401/403/404/409 for schema-valid input",
    "[auth][POST /password/reset]": "same rule as verify-otp: a wrong code is 400 INVALID_CODE (API.md)",
    "[payment][POST /webhook]": "a forged Stripe-Signature is 400 INVALID_SIGNATURE (API.md; Stripe's docs)",
    "[chat][POST /talk_with]": "attachments must be real, reachable images; the schema cannot say so",
    "[chat][POST /talk_with/upload]": "attachments must be decodable images; the schema cannot say so",
    "[chat][POST /group_chat]": "the character limit comes from configuration; a new group needs characters",
    "[chat][POST /voice/transcribe]": "schemathesis cannot serialize the declared audio/* bodies",
    "[media][POST /images/upload]": "random bytes are refused as an unsupported image (415); the schema cannot "
    "say so (the Allow header of a 405 here is right since GET /images/{image_id:uuid})",
    "[media][POST /images/recognize]": "as upload (415 for random bytes); and the conformance user has no "
    "subscription row, so the core database gives it Free's 0 image_recognition (402)",
    "[media][POST /audio]": "random bytes are refused as unsupported audio (415); the schema cannot say so",
    "[media][POST /images/generate]": "the plan comes from the caller's subscription (none here: Free, 402 "
    "INSUFFICIENT_TIER); the ST205 it also had is gone since GET /images/{image_id:uuid}",
    "[community][POST /characters]": "a string carrying U+0000 is 422 (PostgreSQL text cannot hold it; "
    "shared/app.py answers it); the schemas do not exclude U+0000 yet",
    "[community][GET /characters]": "community's cursors are not yet shared/pagination's documented format",
    "[community][PATCH /characters/{character_id}]": "visibility: null is refused though the schema allows it",
    "[community][GET /universes]": "community's cursors are not yet shared/pagination's documented format",
    "[community][POST /scenarios]": "a scenario character needs a name or a character_id (not in the schema)",
    "[community][GET /scenarios]": "community's cursors are not yet shared/pagination's documented format",
    "[community][PATCH /scenarios/{scenario_id}]": "visibility: null is refused though the schema allows it",
    "[community][GET /stories]": "community's cursors are not yet shared/pagination's documented format",
    "[community][PUT /stories/{story_id}/universe]": "universe kinds need fields the schema leaves optional",
    "[community][PUT /stories/{story_id}/characters]": "1-5 characters (TOO_MANY_CHARACTERS) not in the schema",
    "[community][PUT /stories/{story_id}/scenario]": "a scenario needs a setting or a library id (not in the schema)",
    "[community][PATCH /stories/{story_id}]": "If-Match answers 428/400 for a missing or malformed version",
    "[analytics][GET /analytics/leaderboard]": "metric=streak with period week|month is 422 UNSUPPORTED_PERIOD",
}


def pytest_collection_modifyitems(items):
    for item in items:
        if item.originalname != "test_documents_tell_the_truth":
            continue
        for suffix, reason in KNOWN_MISMATCHES.items():
            if item.name.endswith(suffix):
                item.add_marker(pytest.mark.xfail(reason=f"known mismatch: {reason}", strict=False))
