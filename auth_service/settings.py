"""The auth service's settings: everything ServiceSettings reads, plus its own."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode

from shared.email import EmailSettings
from shared.settings import ServiceSettings

CommaList = Annotated[list[str], NoDecode]


class Settings(EmailSettings, ServiceSettings):
    service_name: str = "auth"
    port: int = 8005

    # Tokens
    access_token_ttl_seconds: int = Field(3600, ge=60, le=86400)
    refresh_token_ttl_days: int = Field(30, ge=1, le=365)

    # Email (EMAIL_BACKEND, SENDGRID_*, EMAIL_FROM...): shared.email.EmailSettings
    frontend_url: str = "https://scenextras.com"

    # OAuth providers
    google_client_ids: CommaList = []
    apple_client_ids: CommaList = []
    google_jwks_url: str = "https://www.googleapis.com/oauth2/v3/certs"
    apple_jwks_url: str = "https://appleid.apple.com/auth/keys"
    google_issuers: CommaList = ["https://accounts.google.com", "accounts.google.com"]
    apple_issuers: CommaList = ["https://appleid.apple.com"]
    facebook_graph_url: str = "https://graph.facebook.com/v19.0"
    facebook_app_id: str | None = None
    facebook_app_secret: str | None = None
    oauth_timeout_seconds: float = 5.0

    # One-time codes
    otp_ttl_seconds: int = Field(600, ge=60)
    otp_max_attempts: int = Field(5, ge=1)
    # Minimum gap between two codes sent to one address (create-account, resend, forgot).
    otp_resend_cooldown_seconds: int = Field(60, ge=0)
    # Keys the HMAC that stores codes; defaults to SUPABASE_JWT_SECRET.
    otp_secret: str | None = None

    # Passwords: argon2id (RFC 9106 "low memory" profile by default)
    password_min_length: int = 8
    argon2_time_cost: int = Field(3, ge=1)
    argon2_memory_kib: int = Field(65536, ge=8192)
    argon2_parallelism: int = Field(4, ge=1)
    # Hashes running at once (each holds argon2_memory_kib of RAM); 0 = CPU count.
    password_hash_concurrency: int = Field(0, ge=0)

    # Referrals
    referral_window_days: int = Field(30, ge=0)
    # The bonus amounts themselves are shared.tiers.REFERRAL_BONUS_* (Payment grants them).

    # Housekeeping (every instance runs it; the deletes are safe to run concurrently)
    cleanup_interval_seconds: int = Field(3600, ge=0)  # 0 turns it off
    guest_retention_days: int = Field(30, ge=1)
    refresh_token_grace_days: int = Field(7, ge=0)

    # Profile
    preferences_max_bytes: int = Field(16384, ge=256)

    # Per-route rate limits (requests per minute per user or client address; 0 disables)
    rate_limit_signup_per_minute: int = 10
    rate_limit_login_per_minute: int = 10
    rate_limit_otp_verify_per_minute: int = 10
    rate_limit_otp_resend_per_minute: int = 5
    rate_limit_password_per_minute: int = 5
    rate_limit_guest_per_minute: int = 10
    rate_limit_oauth_per_minute: int = 20
    rate_limit_refresh_per_minute: int = 60

    @field_validator("google_client_ids", "apple_client_ids", "google_issuers", "apple_issuers", mode="before")
    @classmethod
    def _comma_list(cls, value):
        if isinstance(value, str):
            value = value.strip()
            if value.startswith("["):
                import json

                return json.loads(value)
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    @model_validator(mode="after")
    def _facebook_complete(self):
        if bool(self.facebook_app_id) != bool(self.facebook_app_secret):
            raise ValueError("set both FACEBOOK_APP_ID and FACEBOOK_APP_SECRET, or neither")
        return self

    @property
    def otp_key(self) -> bytes:
        return (self.otp_secret or self.supabase_jwt_secret).encode()
