-- Auth service tables in the shared core database (DATABASE_URL).
-- users / user_profiles follow the plan's schema; refresh tokens, OTP codes, OAuth identities and
-- referrals are Auth's own. No foreign keys to other services' tables.

CREATE TABLE IF NOT EXISTS users (
    id                 UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    -- stored lower-cased; NULL for a guest that has not chosen an email yet
    email              TEXT UNIQUE,
    password_hash      TEXT,
    premium            INTEGER NOT NULL DEFAULT 0 CHECK (premium BETWEEN 0 AND 2),  -- 0 free, 1 pro, 2 max
    premium_updated_at TIMESTAMPTZ,  -- timestamp of the subscription event that set `premium`
    stripe_customer_id TEXT,
    referral_code      TEXT NOT NULL UNIQUE,
    referred_by        UUID REFERENCES users(id) ON DELETE SET NULL,
    confirmed          BOOLEAN NOT NULL DEFAULT false,
    temporary_account  BOOLEAN NOT NULL DEFAULT false,
    created_supabase   BOOLEAN NOT NULL DEFAULT false,
    last_login         TIMESTAMPTZ,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (email IS NULL OR email = lower(email))
);

CREATE TABLE IF NOT EXISTS user_profiles (
    user_id           UUID PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    name              TEXT,
    avatar_url        TEXT,
    phone             TEXT,
    country           TEXT,
    language          TEXT DEFAULT 'en',
    preferences       JSONB NOT NULL DEFAULT '{}'::jsonb,
    onboarding_status TEXT,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Opaque refresh tokens, stored as SHA-256 digests. A family is one sign-in; every rotation adds a
-- row to it. Presenting a rotated (or revoked) token again revokes the whole family.
CREATE TABLE IF NOT EXISTS refresh_tokens (
    id          UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id     UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    family_id   UUID NOT NULL,
    token_hash  BYTEA NOT NULL UNIQUE,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at  TIMESTAMPTZ NOT NULL,
    rotated_at  TIMESTAMPTZ,
    revoked_at  TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX IF NOT EXISTS refresh_tokens_user ON refresh_tokens (user_id);

-- One live code per user and purpose ('verify' = email verification, 'reset' = password reset).
-- code_hash is an HMAC of the code keyed with the service secret; a new code replaces the old one.
CREATE TABLE IF NOT EXISTS otp_codes (
    user_id     UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    purpose     TEXT NOT NULL CHECK (purpose IN ('verify', 'reset')),
    code_hash   TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, purpose)
);

CREATE TABLE IF NOT EXISTS oauth_identities (
    provider    TEXT NOT NULL CHECK (provider IN ('google', 'apple', 'facebook')),
    subject     TEXT NOT NULL,
    user_id     UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    email       TEXT,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_used_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, subject)
);
CREATE INDEX IF NOT EXISTS oauth_identities_user ON oauth_identities (user_id);

-- A completed referral. Rows outlive deleted users (ids set to NULL) so a bonus is never granted
-- twice and the referrer's count stays true; referred_id is unique: once per user.
CREATE TABLE IF NOT EXISTS referrals (
    id             UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    referrer_id    UUID REFERENCES users(id) ON DELETE SET NULL,
    referred_id    UUID UNIQUE REFERENCES users(id) ON DELETE SET NULL,
    code           TEXT NOT NULL,
    bonus_credits  INTEGER NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (referrer_id IS NULL OR referred_id IS NULL OR referrer_id <> referred_id)
);
CREATE INDEX IF NOT EXISTS referrals_referrer ON referrals (referrer_id);
