"""Settings from the environment (Dokku `config:set`), validated once at start-up.

A missing or invalid variable stops start-up with a message naming it, instead of a
traceback or a late failure on the first request.
"""

from __future__ import annotations

import sys
from typing import Literal, TypeVar

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared import fleet


class ServiceSettings(BaseSettings):
    """What every service reads. Services subclass it and add their own fields."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)

    service_name: str = "service"
    environment: str = "development"
    port: int = 8080

    database_url: str = Field(..., description="shared core database (scenextras-db)")
    redis_url: str = "redis://127.0.0.1:6379/0"
    rabbitmq_url: str = "amqp://guest:guest@127.0.0.1:5672/%2F"
    # Redis keys are namespaced so test runs (and, if ever needed, environments) never collide.
    redis_prefix: str = "sx"
    events_exchange: str = "scenextras.events"

    supabase_jwt_secret: str = Field(..., min_length=32)
    # Set to the old secret while rotating SUPABASE_JWT_SECRET (infra/dokku/README.md).
    supabase_jwt_secret_previous: str | None = None
    supabase_url: str | None = None
    jwt_issuer: str = "scenextras-auth"
    # Asymmetric algorithms accepted from the JWKS, when SUPABASE_URL is set.
    jwt_asymmetric_algorithms: list[str] = ["ES256", "RS256"]

    sentry_dsn: str | None = None
    cors_origins: list[str] = ["*"]
    max_body_bytes: int = 1024 * 1024
    rate_limit_per_minute: int = 100
    migrate_on_start: bool = False
    db_pool_min: int = 1
    db_pool_max: int = 10
    # Outbox relay and consumer tuning.
    # inprocess: each web process publishes its outbox from its own event loop. external: the web
    # processes leave that to `python -m shared.relay <service>` (Procfile `relay`), which then
    # must run: its CPU (~1.5 ms a chat message) leaves the requests' event loop.
    outbox_relay: Literal["inprocess", "external"] = "inprocess"
    outbox_batch_size: int = 500
    # Published outbox rows (event bodies: emails, names) are deleted this long after publication,
    # by a sweep in the relay every OUTBOX_SWEEP_SECONDS. Unpublished rows are never deleted.
    outbox_retention_hours: float = 24.0
    outbox_sweep_seconds: float = 600.0
    consumer_prefetch: int = 20
    consumer_max_attempts: int = 5
    consumer_retry_delays_ms: list[int] = [1000, 5000, 30000]
    log_level: str = "INFO"
    log_json: bool = True
    # Engagement tracking (shared/engagement.py): PostHog's project key turns it on.
    posthog_api_key: str | None = None
    posthog_host: str = "https://us.i.posthog.com"
    # Tokens of users Auth never had are refused (shared/known_users.py): Auth is asked once per
    # unknown id. Off only for tests of one service run without Auth (shared/testing/plugin.py).
    known_users_check: bool = True
    auth_service_url: str = f"http://127.0.0.1:{fleet.get('auth').dev_port}"
    known_users_max: int = Field(100_000, ge=1)
    known_users_unknown_ttl_seconds: float = Field(5.0, ge=0)
    # The second erasure pass after user.deleted (shared/erasure.py): longer than any request runs.
    erasure_second_pass_seconds: float = Field(120.0, ge=0)
    erasure_sweep_seconds: float = Field(10.0, gt=0)

    @field_validator("supabase_jwt_secret")
    @classmethod
    def _not_placeholder(cls, value: str) -> str:
        if value.strip().lower() in {"changeme", "secret", "your-secret"}:
            raise ValueError("is a placeholder; set a real secret of at least 32 characters")
        return value


S = TypeVar("S", bound=ServiceSettings)


class SettingsError(SystemExit):
    pass


def describe_validation_error(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        name = ".".join(str(p) for p in err["loc"]).upper()
        if err["type"] == "missing":
            lines.append(f"  {name}: missing (set the environment variable {name})")
        else:
            lines.append(f"  {name}: {err['msg']}")
    return "\n".join(lines)


def load_settings(cls: type[S], **overrides) -> S:
    """Build settings from the environment; exit with a clear message on a bad variable."""
    try:
        return cls(**overrides)
    except ValidationError as exc:
        message = f"{cls.__module__}.{cls.__name__}: invalid configuration\n{describe_validation_error(exc)}"
        print(message, file=sys.stderr)
        raise SettingsError(message) from None
