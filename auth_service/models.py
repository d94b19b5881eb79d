"""Request and response models (pydantic at the edges)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, field_validator

from shared.openapi import WHITESPACE_CLASS

# Each pattern is what the server accepts, so the OpenAPI document says it exactly: surrounding whitespace
# (trimmed) included where it always was, character classes spelled out (no \s or \d, which mean
# different sets to different regex engines), the whole value matched as JSON Schema readers match it.
_WS = WHITESPACE_CLASS
_BLANKS = rf"[{_WS}]*"
EMAIL_PATTERN = (
    rf"^{_BLANKS}[A-Za-z0-9.!#$%&'*+/=?^_`{{|}}~-]{{1,64}}@[A-Za-z0-9](?:[A-Za-z0-9-]{{0,61}}[A-Za-z0-9])?"
    rf"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{{0,61}}[A-Za-z0-9])?)+{_BLANKS}$"
)
CODE_PATTERN = rf"^{_BLANKS}[0-9]{{6}}{_BLANKS}$"
REFERRAL_PATTERN = rf"^{_BLANKS}[A-Za-z0-9]{{4,16}}{_BLANKS}$"
OPTIONAL_REFERRAL_PATTERN = rf"^{_BLANKS}(?:[A-Za-z0-9]{{4,16}})?{_BLANKS}$"
# Something besides whitespace, no control characters once trimmed.
NAME_PATTERN = rf"^{_BLANKS}[^\x00-\x1f{_WS}](?:[^\x00-\x1f]*[^\x00-\x1f{_WS}])?{_BLANKS}$"
AVATAR_URL_PATTERN = rf"^{_BLANKS}[Hh][Tt][Tt][Pp][Ss]?://[^{_WS}/$.?#][^{_WS}]*{_BLANKS}$"
PHONE_SEPARATORS = rf"[{_WS}().-]"
PHONE_PATTERN = rf"^{PHONE_SEPARATORS}*(?:\+{PHONE_SEPARATORS}*)?(?:[0-9]{PHONE_SEPARATORS}*){{6,15}}$"
COUNTRY_PATTERN = rf"^{_BLANKS}[A-Za-z]{{2}}{_BLANKS}$"
LANGUAGE_PATTERN = rf"^{_BLANKS}[a-z]{{2,3}}(?:-[A-Za-z0-9]{{2,8}})*{_BLANKS}$"
ONBOARDING_PATTERN = rf"^{_BLANKS}[a-z0-9_:-]{{1,50}}{_BLANKS}$"


def matching(
    pattern: str, message: str, *, max_length: int | None = None, then: Callable[[str], str] = str.strip
) -> Any:
    """A string checked against `pattern` (and `max_length`) as given, then normalised by `then`;
    the document declares exactly that pattern and length."""
    compiled = re.compile(pattern)

    def check(value: Any) -> str:
        if not isinstance(value, str) or (max_length is not None and len(value) > max_length):
            raise ValueError(message)
        if not compiled.fullmatch(value):  # anchored: `$` is the end, as in JSON Schema (not before a final \n)
            raise ValueError(message)
        return then(value)

    schema: dict[str, Any] = {"type": "string", "pattern": pattern}
    if max_length is not None:
        schema["maxLength"] = max_length
    return Annotated[str, BeforeValidator(check), WithJsonSchema(schema)]


Email = matching(EMAIL_PATTERN, "must be an email address", max_length=254, then=lambda v: v.strip().lower())
OtpCode = matching(CODE_PATTERN, "must be the 6-digit code from the email")
ReferralCode = matching(
    REFERRAL_PATTERN, "must be a referral code (4-16 letters and digits)", then=lambda v: v.strip().upper()
)
# Optional at sign-up: an empty code is no code.
OptionalReferralCode = matching(
    OPTIONAL_REFERRAL_PATTERN, "must be a referral code (4-16 letters and digits)", then=lambda v: v.strip().upper()
)
Password = Annotated[str, Field(min_length=8, max_length=256)]
ProfileName = matching(NAME_PATTERN, "must be a non-empty name without control characters", max_length=100)
AvatarUrl = matching(AVATAR_URL_PATTERN, "must be an http(s) URL", max_length=2048)
Phone = matching(
    PHONE_PATTERN, "must be a phone number, e.g. +14155550100", then=lambda v: re.sub(PHONE_SEPARATORS, "", v)
)
Country = matching(
    COUNTRY_PATTERN, "must be an ISO 3166-1 alpha-2 country code, e.g. US", then=lambda v: v.strip().upper()
)
Language = matching(LANGUAGE_PATTERN, "must be a language tag, e.g. en or pt-BR")
OnboardingStatus = matching(ONBOARDING_PATTERN, "must be a short status such as 'started', 'avatar' or 'completed'")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class EmailBody(Strict):
    email: Email


class CreateAccount(Strict):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)
    email: Email
    password: Password
    referral_code: OptionalReferralCode | None = None

    @field_validator("referral_code")
    @classmethod
    def _no_code(cls, value: str | None) -> str | None:
        return value or None


class VerifyOtp(Strict):
    email: Email
    code: OtpCode


class Login(Strict):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)
    email: Email
    password: str = Field(min_length=1, max_length=256)


class RefreshBody(Strict):
    refresh_token: str = Field(min_length=20, max_length=200)


class PasswordReset(VerifyOtp):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)
    new_password: Password


class EmailChange(Strict):
    """POST /users/me/email: the address to move the account to (a code is sent there)."""

    new_email: Email


class EmailChangeCode(Strict):
    code: OtpCode


class PasswordChange(Strict):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)
    current_password: str = Field(min_length=1, max_length=256)
    new_password: Password


class EmailChangeAccepted(BaseModel):
    status: Literal["pending_verification"] = "pending_verification"
    new_email: str


class IdTokenBody(Strict):
    id_token: str = Field(min_length=10, max_length=8192)


class FacebookBody(Strict):
    access_token: str = Field(min_length=10, max_length=4096)


class ReferralApply(Strict):
    code: ReferralCode


class ProfileUpdate(Strict):
    """PUT /users/me/details: only the fields sent change; null clears a field."""

    name: ProfileName | None = None
    avatar_url: AvatarUrl | None = None
    phone: Phone | None = None
    country: Country | None = None
    language: Language | None = None
    preferences: dict[str, Any] | None = None
    onboarding_status: OnboardingStatus | None = None

    @field_validator("preferences")
    @classmethod
    def _preferences(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return _within_int64(value)


def _within_int64(value: Any) -> Any:
    """Any JSON object is valid preferences; integers beyond 64 bits (which jsonb's encoder cannot
    write) are kept as numbers, the way most JSON readers hold them anyway."""
    if isinstance(value, dict):
        return {k: _within_int64(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_within_int64(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
        return float(value)
    return value


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int


class Profile(BaseModel):
    name: str | None = None
    avatar_url: str | None = None
    phone: str | None = None
    country: str | None = None
    language: str | None = None
    preferences: dict[str, Any] = {}
    onboarding_status: str | None = None
    updated_at: datetime | None = None


class UserOut(BaseModel):
    id: str
    email: str | None
    confirmed: bool
    is_guest: bool
    tier: int
    tier_name: str
    referral_code: str
    referred_by: str | None
    has_password: bool
    providers: list[str] = []
    created_at: datetime
    last_login: datetime | None
    profile: Profile | None = None


class AuthResult(TokenPair):
    user: UserOut


class SignupAccepted(BaseModel):
    user_id: str
    status: Literal["pending_verification"] = "pending_verification"


class ReferralInfo(BaseModel):
    code: str
    referral_count: int
    bonus_earned: int
    bonus_per_referral: int
    referred_by: str | None
    referral_bonus_received: int
    can_apply: bool
    apply_deadline: datetime | None


class UserExistence(BaseModel):
    """GET /internal/users/{id}: the user exists (guests are users)."""

    user_id: str
    is_guest: bool
