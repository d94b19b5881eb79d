"""Request and response models (pydantic at the edges)."""
from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

EMAIL_RE = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")
CODE_RE = re.compile(r"^\d{6}$")
REFERRAL_RE = re.compile(r"^[A-Za-z0-9]{4,16}$")
PHONE_RE = re.compile(r"^\+?[0-9]{6,15}$")
COUNTRY_RE = re.compile(r"^[A-Z]{2}$")
LANGUAGE_RE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
ONBOARDING_RE = re.compile(r"^[a-z0-9_:-]{1,50}$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def normalise_email(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be an email address")
    value = value.strip().lower()
    if len(value) > 254 or not EMAIL_RE.match(value) or len(value.split("@")[0]) > 64:
        raise ValueError("must be an email address")
    return value


def normalise_referral(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError("must be a referral code")
    value = value.strip().upper()
    if value == "":
        return None
    if not REFERRAL_RE.match(value):
        raise ValueError("must be a referral code (letters and digits)")
    return value


class EmailBody(Strict):
    email: str

    _email = field_validator("email", mode="before")(lambda cls, v: normalise_email(v))


def _check_password(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    if len(value) < 8:
        raise ValueError("must be at least 8 characters")
    if len(value) > 256:
        raise ValueError("must be at most 256 characters")
    return value


class CreateAccount(Strict):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)
    email: str
    password: str
    referral_code: str | None = None

    _email = field_validator("email", mode="before")(lambda cls, v: normalise_email(v))
    _password = field_validator("password", mode="before")(lambda cls, v: _check_password(v))
    _referral = field_validator("referral_code", mode="before")(lambda cls, v: normalise_referral(v))


class VerifyOtp(Strict):
    email: str
    code: str

    _email = field_validator("email", mode="before")(lambda cls, v: normalise_email(v))

    @field_validator("code", mode="before")
    @classmethod
    def _code(cls, value: Any) -> str:
        value = str(value).strip() if isinstance(value, (str, int)) else value
        if not isinstance(value, str) or not CODE_RE.match(value):
            raise ValueError("must be the 6-digit code from the email")
        return value


class Login(Strict):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)
    email: str
    password: str = Field(min_length=1, max_length=256)

    _email = field_validator("email", mode="before")(lambda cls, v: normalise_email(v))


class RefreshBody(Strict):
    refresh_token: str = Field(min_length=20, max_length=200)


class PasswordReset(VerifyOtp):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)
    new_password: str

    _password = field_validator("new_password", mode="before")(lambda cls, v: _check_password(v))


class IdTokenBody(Strict):
    id_token: str = Field(min_length=10, max_length=8192)


class FacebookBody(Strict):
    access_token: str = Field(min_length=10, max_length=4096)


class ReferralApply(Strict):
    code: str

    @field_validator("code", mode="before")
    @classmethod
    def _code(cls, value: Any) -> str:
        code = normalise_referral(value)
        if code is None:
            raise ValueError("must be a referral code")
        return code


class ProfileUpdate(Strict):
    """PUT /users/me/details: only the fields sent change; null clears a field."""

    name: str | None = Field(None, max_length=100)
    avatar_url: str | None = Field(None, max_length=2048)
    phone: str | None = None
    country: str | None = None
    language: str | None = None
    preferences: dict[str, Any] | None = None
    onboarding_status: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None and (not value or any(ord(c) < 32 for c in value)):
            raise ValueError("must be a non-empty name without control characters")
        return value

    @field_validator("avatar_url")
    @classmethod
    def _avatar(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^\s/$.?#][^\s]*$", value, re.IGNORECASE):
            raise ValueError("must be an http(s) URL")
        return value

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str | None) -> str | None:
        if value is None:
            return None
        compact = re.sub(r"[\s().-]", "", value)
        if not PHONE_RE.match(compact):
            raise ValueError("must be a phone number, e.g. +14155550100")
        return compact

    @field_validator("country")
    @classmethod
    def _country(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.upper()
        if not COUNTRY_RE.match(value):
            raise ValueError("must be an ISO 3166-1 alpha-2 country code, e.g. US")
        return value

    @field_validator("language")
    @classmethod
    def _language(cls, value: str | None) -> str | None:
        if value is not None and not LANGUAGE_RE.match(value):
            raise ValueError("must be a language tag, e.g. en or pt-BR")
        return value

    @field_validator("onboarding_status")
    @classmethod
    def _onboarding(cls, value: str | None) -> str | None:
        if value is not None and not ONBOARDING_RE.match(value):
            raise ValueError("must be a short status such as 'started', 'avatar' or 'completed'")
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
