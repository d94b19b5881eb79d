"""Every service's OpenAPI document tells the truth: schemathesis generates requests from each
document (examples, coverage and fuzzing phases, valid and invalid data) against the service
running in-process with its real lifespan on real PostgreSQL, Redis, RabbitMQ and the sandbox,
and checks every answer with all its default checks (status documented, content type, headers,
body schema, invalid data rejected, valid data accepted, no 5xx, ...).

A few operations answer a status API.md promises for schema-valid input that a default check does not expect
(a wrong one-time code, a forged signature): CHECK_STATUSES adds it to that check's expected statuses for those
operations only, through schemathesis' own per-operation configuration, with the reason next to it. Every
check still runs on every operation; nothing is excluded.

Protected routes get a valid token (a service token where the document says the route is for
services, a max-tier user's otherwise), so they are exercised beyond their 401; schemathesis
also sends requests without it (the ignored_auth check). Examples per operation are bounded
(CONFORMANCE_EXAMPLES, default 25) so the test stays within a few minutes on a small machine.
"""

from __future__ import annotations

import asyncio
import io
import os
import uuid
import wave

import hypothesis
import PIL.Image
import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import strategies as st
from schemathesis.config import ChecksConfig, SchemathesisConfig
from schemathesis.core.parameters import ParameterLocation
from schemathesis.generation.meta import negated_parameters
from schemathesis.python.asgi import shutdown_lifespans

from shared.migrate import migrate
from shared.testing.processes import ServiceProcess
from tests.shared.documents import SERVICES, build_app, document

EXAMPLES = int(os.environ.get("CONFORMANCE_EXAMPLES", "25"))
# A request that hangs fails its operation (naming the request) instead of stalling the suite.
REQUEST_TIMEOUT = 60

# What each service needs beyond the run's environment to answer for real.
_PER_ROUTE_LIMITS = ("signup", "login", "otp_verify", "otp_resend", "password", "guest", "oauth", "refresh")


def _service_overrides(service: str, sandbox, tmp_dir) -> dict[str, str]:
    keys = sandbox.env(keys=True) if sandbox is not None else {}
    if service == "auth":
        from sandbox.oauth import DEFAULT_FACEBOOK_APP_ID

        return {
            **keys,
            "GOOGLE_CLIENT_IDS": "sx-test.apps.googleusercontent.com",
            "APPLE_CLIENT_IDS": "com.scenextras.app",
            "FACEBOOK_APP_ID": DEFAULT_FACEBOOK_APP_ID,
            "FACEBOOK_APP_SECRET": "sandbox-facebook-app-secret",
            "EMAIL_BACKEND": "file",
            "EMAIL_OUTBOX_DIR": str(tmp_dir / "emails"),
            "OTP_RESEND_COOLDOWN_SECONDS": "0",
            "ARGON2_TIME_COST": "1",
            "ARGON2_MEMORY_KIB": "8192",
            "ARGON2_PARALLELISM": "1",
            **{f"RATE_LIMIT_{name.upper()}_PER_MINUTE": "100000" for name in _PER_ROUTE_LIMITS},
        }
    if service == "payment":
        return {
            **keys,
            "SWEEP_INTERVAL_SECONDS": "0",
            "FRONTEND_URL": "https://app.scenextras.test",
            "REVENUECAT_WEBHOOK_AUTH": "Bearer rc-test-secret-0123456789",
        }
    if service == "community":
        # The notification stream is endless by design: here it ends after a second (clients reconnect).
        return {**keys, "NOTIFICATION_STREAM_MAX_SECONDS": "1"}
    if service in ("chat", "community", "media"):
        return {**keys}  # models, moderation and providers on the sandbox
    if service == "content":
        return {
            **keys,
            "CONTENT_DATA_DIR": str(tmp_dir / "content"),
            "CONTENT_SEED": "real",
            "SYNC_INTERVAL_SECONDS": "0",
            "SYNC_POPULAR_PAGES": "1",
            "SYNC_TRENDING": "false",
        }
    return {}


# service -> operation -> check -> statuses added to the check's defaults, and why.
CHECK_STATUSES: dict[str, dict[str, dict[str, tuple[list[str], str]]]] = {
    "auth": {
        # A well-formed code that is not the one sent is 400 INVALID_CODE (API.md): the request is valid,
        # the code is wrong, and no generator can know the code mailed to the user.
        "POST /verify-otp": {"positive_data_acceptance": (["400"], "a wrong one-time code is 400 INVALID_CODE")},
        "POST /password/reset": {"positive_data_acceptance": (["400"], "a wrong reset code is 400 INVALID_CODE")},
    },
    "payment": {
        # Stripe's docs: a webhook whose Stripe-Signature does not verify is answered 400; only Stripe can sign.
        "POST /webhook": {"positive_data_acceptance": (["400"], "a forged Stripe-Signature is 400 INVALID_SIGNATURE")},
    },
    "analytics": {
        # metric=streak has only period=all (docs/analytics.md: a streak runs up to today, so a week's or a
        # month's board is not kept); the answer is 422 UNSUPPORTED_PERIOD, named in the route's description.
        # OpenAPI cannot state a rule between two query parameters, so the document lists both enums whole.
        "GET /analytics/leaderboard": {
            "positive_data_acceptance": (["422"], "metric=streak with period week|month is 422 UNSUPPORTED_PERIOD")
        },
    },
    "chat": {
        # Quota used up is 402 INSUFFICIENT_QUOTA (API.md), a state like 409: each case's user is new and has
        # no subscription row, so its free plan has no image_recognition quota (an image attached is 402).
        **{
            name: {"positive_data_acceptance": (["402"], "a quota used up is 402 INSUFFICIENT_QUOTA")}
            for name in ("POST /talk_with", "POST /talk_with/upload", "POST /group_chat")
        }
    },
    "media": {
        # The plan and the quota come from the caller's subscription: each case's user is new and has none,
        # so it is Free, which has no image_recognition quota (402 INSUFFICIENT_QUOTA) and no generation
        # (402 INSUFFICIENT_TIER), as API.md says for a plan or a quota that does not cover the request.
        "POST /images/recognize": {"positive_data_acceptance": (["402"], "Free has no image_recognition quota")},
        "POST /images/generate": {"positive_data_acceptance": (["402"], "Free's plan has no image generation")},
    },
    "community": {
        # RFC 6585: a missing If-Match on a conditional-only route is 428 Precondition Required (API.md),
        # and RFC 9110: a well-formed but stale version is 412 Precondition Failed.
        "PATCH /stories/{story_id}": {
            "missing_required_header": (["428"], "If-Match left out is 428 PRECONDITION_REQUIRED"),
            "positive_data_acceptance": (["412"], "a stale If-Match version is 412 VERSION_CONFLICT"),
        },
    },
}
_DEFAULT_CHECKS = ChecksConfig()  # schemathesis' defaults, which the statuses above extend


def _config(service: str) -> SchemathesisConfig:
    operations = [
        {
            "include-name": name,
            "checks": {
                check: {"expected-statuses": [*getattr(_DEFAULT_CHECKS, check).expected_statuses, *added]}
                for check, (added, _why) in checks.items()
            },
        }
        for name, checks in CHECK_STATUSES.get(service, {}).items()
    ]
    return SchemathesisConfig.from_dict({"operations": operations})


def _wav(frames: int) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\x00\x01" * frames)
    return buffer.getvalue()


@st.composite
def _images(draw, image_format: str) -> bytes:
    size = (draw(st.integers(1, 48)), draw(st.integers(1, 48)))
    color = tuple(draw(st.integers(0, 255)) for _ in range(3))
    buffer = io.BytesIO()
    PIL.Image.new("RGB", size, color).save(buffer, format=image_format)
    return buffer.getvalue()


# A multipart part whose encoding names image or audio types (chat's /talk_with/upload and /voice/transcribe,
# media's /images/upload and /audio) gets a real file of one of them, as a client would send: schemathesis
# would otherwise send random bytes under the type, which the services rightly refuse (they read the content).
_IMAGE_FORMATS = {"image/png": "PNG", "image/jpeg": "JPEG", "image/gif": "GIF", "image/webp": "WEBP"}
for _media_type, _format in _IMAGE_FORMATS.items():
    schemathesis.openapi.media_type(_media_type, _images(_format))

# 0.125 to 1 s at 8 kHz: OpenAI's transcription (and its sandbox) refuses audio under 0.1 s.
schemathesis.openapi.media_type("audio/wav", st.integers(1000, 8000).map(_wav), aliases=("audio/x-wav", "audio/wave"))


# The documents, built at collection time (schemathesis parametrizes over their operations);
# the running apps are checked to answer the same document.
DOCUMENTS = {service: document(service) for service in SERVICES}


class ServiceApp:
    """What schemathesis sends its requests to (probes of its checks included): the service's app
    as the `running` fixture builds it with the run's real configuration."""

    def __init__(self, service: str):
        self.service = service
        self.app = None

    async def __call__(self, scope, receive, send):
        await self.app(scope, receive, send)


def _schema(service: str):
    loaded = schemathesis.openapi.from_dict(DOCUMENTS[service], config=_config(service))
    loaded.app = ServiceApp(service)
    return loaded


SCHEMAS = {service: _schema(service) for service in SERVICES}


@pytest.fixture(scope="module")
def running(service_env, sandbox, tmp_path_factory):
    """`running(service)`: the service's app with the run's real configuration; schemathesis
    starts its lifespan (on its own event loop thread) at the first request, and this fixture
    shuts every one down at the end."""

    processes: list[ServiceProcess] = []

    def _start(service: str) -> None:
        target = SCHEMAS[service].app
        if target.app is None:
            env = {**service_env, **_service_overrides(service, sandbox, tmp_path_factory.mktemp(service))}
            if service in ("chat", "media"):
                # Chat and Media reserve quota with Payment's SQL functions in the core database.
                asyncio.run(migrate(env["DATABASE_URL"], "payment"))
            if service == "chat":
                # Chat reads custom characters (character_id) from Community over HTTP: a real one, else
                # every such request would be 503 COMMUNITY_UNAVAILABLE.
                community_env = {**service_env, **_service_overrides("community", sandbox, None)}
                community = ServiceProcess(
                    "community", {**community_env, "OUTBOX_RELAY": "inprocess"}, log_dir=tmp_path_factory.mktemp("cl")
                )
                processes.append(community)
                community.start(timeout=120)
                env["COMMUNITY_SERVICE_URL"] = community.url
            target.app = build_app(service, env)
            assert target.app.openapi() == DOCUMENTS[service]

    yield _start
    shutdown_lifespans()
    for loaded in SCHEMAS.values():
        loaded.app.app = None
    for process in processes:
        process.stop()


def _leaves_out_authorization(case) -> bool:
    """A negative case whose violation is the missing Authorization header: adding a token would make it valid
    (and then the app is right to accept it, which the negative check would call a failure)."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_negative:
        return False
    named = {name.lower() for name, location in negated_parameters(meta) if location == ParameterLocation.HEADER}
    for mutation in getattr(meta.phase.data, "mutations", ()):
        if mutation.parameter_location == ParameterLocation.HEADER and "required" in mutation.keywords:
            named.add(str(mutation.original_value).lower())
    return "authorization" in named


def _file_lists(case) -> None:
    """Schemathesis puts one generated file where the schema has an array of file parts (chat's `images`);
    sent bare it carries no filename, and a server rightly reads it as a text field. Send it as a client
    would: a list of one file."""
    if not isinstance(case.body, dict) or not case.multipart_content_types:
        return
    body = case.operation.get_body_for_media_type(case.media_type)
    properties = body.form_properties if body is not None else {}
    for name in case.multipart_content_types:
        if isinstance(case.body.get(name), bytes) and properties.get(name, {}).get("type") == "array":
            case.body[name] = [case.body[name]]


def _needs_service_token(case) -> bool:
    forbidden = case.operation.definition.raw.get("responses", {}).get("403", {})
    return "SERVICE_TOKEN_REQUIRED" in forbidden.get("description", "")


@schemathesis.pytest.parametrize(**SCHEMAS)
@hypothesis.settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)
def test_documents_tell_the_truth(case, running, tokens):
    running(case.operation.schema.app.service)
    headers = None
    if case.operation.definition.raw.get("security") and not _leaves_out_authorization(case):
        token = tokens.service() if _needs_service_token(case) else tokens.user(str(uuid.uuid4()), tier=2)
        headers = tokens.headers(token)
    _file_lists(case)
    case.call_and_validate(headers=headers, timeout=REQUEST_TIMEOUT)
