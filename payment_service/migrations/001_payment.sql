-- Payment's tables in the shared core database, and the atomic quota functions every service calls.
-- No foreign keys to Auth's tables (services erase their own data on user.deleted).

-- What each tier allows per period (-1 = unlimited); shared/tiers.py TIER_QUOTAS holds the same numbers.
CREATE TABLE IF NOT EXISTS tier_quotas (
    tier        INTEGER NOT NULL,
    quota_type  TEXT NOT NULL,
    allowance   INTEGER NOT NULL CHECK (allowance >= -1),
    PRIMARY KEY (tier, quota_type)
);
INSERT INTO tier_quotas (tier, quota_type, allowance) VALUES
    (0, 'regular', 5), (0, 'premium', 0), (0, 'image_gen', 0), (0, 'image_recognition', 0), (0, 'video', 0), (0, 'story', 1),
    (1, 'regular', -1), (1, 'premium', 100), (1, 'image_gen', 5), (1, 'image_recognition', 10), (1, 'video', 30), (1, 'story', 20),
    (2, 'regular', -1), (2, 'premium', -1), (2, 'image_gen', -1), (2, 'image_recognition', -1), (2, 'video', -1), (2, 'story', -1)
ON CONFLICT (tier, quota_type) DO NOTHING;

-- One row per subscription per source: a Stripe subscription (external_id = sub_...) or a user's
-- RevenueCat entitlement state (external_id = the RevenueCat app user id). A user's tier is the
-- highest entitled row (effective_tier). The plan's single row per user cannot hold both sources.
CREATE TABLE IF NOT EXISTS subscriptions (
    id                     UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id                UUID NOT NULL,
    source                 TEXT NOT NULL CHECK (source IN ('stripe', 'revenuecat')),
    external_id            TEXT NOT NULL,
    stripe_customer_id     TEXT,
    stripe_subscription_id TEXT,
    stripe_item_id         TEXT,
    price_id               TEXT,              -- Stripe price or RevenueCat product
    tier                   INTEGER NOT NULL DEFAULT 0 CHECK (tier BETWEEN 0 AND 2),
    status                 TEXT NOT NULL,     -- Stripe's statuses; RevenueCat: active, past_due, expired
    current_period_end     TIMESTAMPTZ,
    cancel_at_period_end   BOOLEAN NOT NULL DEFAULT false,
    grace_until            TIMESTAMPTZ,       -- past_due keeps the tier until then
    trial_end              TIMESTAMPTZ,
    pending_tier           INTEGER,           -- a downgrade scheduled for the period end
    source_updated_at      TIMESTAMPTZ NOT NULL, -- when the provider produced the state applied here
    created_at             TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at             TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (source, external_id)
);
CREATE INDEX IF NOT EXISTS idx_subscriptions_user_id ON subscriptions (user_id);
CREATE INDEX IF NOT EXISTS idx_subscriptions_stripe_customer ON subscriptions (stripe_customer_id);
CREATE INDEX IF NOT EXISTS idx_subscriptions_grace ON subscriptions (grace_until) WHERE status = 'past_due';

CREATE TABLE IF NOT EXISTS stripe_customers (
    user_id      UUID PRIMARY KEY,
    customer_id  TEXT NOT NULL UNIQUE,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Remaining allowance per quota type (the plan's columns), plus referral bonus credits for
-- regular messages that never reset, and the tier/period the allowances were last set for.
CREATE TABLE IF NOT EXISTS user_quotas (
    user_id                  UUID PRIMARY KEY,
    tier                     INTEGER NOT NULL DEFAULT 0,
    quota                    INTEGER NOT NULL DEFAULT 5,   -- regular
    quota_premium_model      INTEGER NOT NULL DEFAULT 0,
    quota_image_generation   INTEGER NOT NULL DEFAULT 0,
    quota_image_recognition  INTEGER NOT NULL DEFAULT 0,
    quota_video              INTEGER NOT NULL DEFAULT 0,
    quota_story              INTEGER NOT NULL DEFAULT 1,
    bonus_quota              INTEGER NOT NULL DEFAULT 0 CHECK (bonus_quota >= 0),
    tokens_used              BIGINT NOT NULL DEFAULT 0,
    premium_tokens_used      BIGINT NOT NULL DEFAULT 0,
    period                   TEXT NOT NULL DEFAULT 'daily' CHECK (period IN ('daily', 'billing')),
    last_reset               TIMESTAMPTZ NOT NULL DEFAULT now(),
    reset_at                 TIMESTAMPTZ,
    created_at               TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at               TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (quota >= -1 AND quota_premium_model >= -1 AND quota_image_generation >= -1
           AND quota_image_recognition >= -1 AND quota_video >= -1 AND quota_story >= -1)
);
CREATE INDEX IF NOT EXISTS idx_user_quotas_daily_reset ON user_quotas (reset_at) WHERE period = 'daily';

-- Every reserve is a row: settle/release are idempotent on it, and a reservation nobody settles
-- (a crashed worker) expires and is given back.
CREATE TABLE IF NOT EXISTS quota_reservations (
    id            UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id       UUID NOT NULL,
    quota_type    TEXT NOT NULL,
    amount        INTEGER NOT NULL,
    from_bonus    INTEGER NOT NULL DEFAULT 0,
    unlimited     BOOLEAN NOT NULL DEFAULT false,
    period_start  TIMESTAMPTZ NOT NULL,           -- user_quotas.last_reset when reserved
    state         TEXT NOT NULL DEFAULT 'held' CHECK (state IN ('held', 'settled', 'released', 'expired')),
    charged       INTEGER,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at    TIMESTAMPTZ NOT NULL,
    finished_at   TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS idx_quota_reservations_held_user ON quota_reservations (user_id, expires_at) WHERE state = 'held';
CREATE INDEX IF NOT EXISTS idx_quota_reservations_held_expiry ON quota_reservations (expires_at) WHERE state = 'held';
CREATE INDEX IF NOT EXISTS idx_quota_reservations_finished ON quota_reservations (finished_at) WHERE state <> 'held';

-- Every money movement (and failed attempt), kept for accounting.
CREATE TABLE IF NOT EXISTS payment_transactions (
    id                  UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id             UUID,                    -- NULL after the user is erased
    source              TEXT NOT NULL,           -- stripe | revenuecat
    kind                TEXT NOT NULL,           -- payment | refund | failed_payment
    status              TEXT NOT NULL,           -- succeeded | failed | refunded
    amount_cents        BIGINT NOT NULL,         -- refunds are negative
    currency            TEXT NOT NULL,
    external_id         TEXT NOT NULL,           -- invoice / charge / store transaction id
    stripe_customer_id  TEXT,
    subscription_ref    TEXT,                    -- Stripe subscription id / RevenueCat product
    description         TEXT,
    occurred_at         TIMESTAMPTZ NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (source, kind, external_id)
);
CREATE INDEX IF NOT EXISTS idx_payment_transactions_user ON payment_transactions (user_id, occurred_at DESC);

-- Processed provider webhook events: recorded in the same transaction as their effect.
CREATE TABLE IF NOT EXISTS webhook_events (
    provider       TEXT NOT NULL,
    event_id       TEXT NOT NULL,
    event_type     TEXT NOT NULL,
    event_created  TIMESTAMPTZ,
    outcome        TEXT,
    received_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, event_id)
);

-- ------------------------------------------------------------------------------------------ helpers

-- An event into the transactional outbox (shared/events.py Event, schema version 1).
CREATE OR REPLACE FUNCTION payment_emit(p_type TEXT, p_user_id UUID, p_data JSONB) RETURNS VOID
LANGUAGE plpgsql AS $$
DECLARE
    v_id UUID := gen_random_uuid();
BEGIN
    INSERT INTO outbox_events (event_id, event_type, body)
    VALUES (v_id, p_type, convert_to(jsonb_build_object(
        'event_id', v_id,
        'event_type', p_type,
        'timestamp', to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        'user_id', p_user_id,
        'data', p_data,
        'metadata', jsonb_build_object('source', 'payment_service'),
        'version', 1)::text, 'UTF8'));
END;
$$;

CREATE OR REPLACE FUNCTION quota_next_daily_reset() RETURNS TIMESTAMPTZ
LANGUAGE sql STABLE AS $$
    SELECT (date_trunc('day', now() AT TIME ZONE 'UTC') + interval '1 day') AT TIME ZONE 'UTC'
$$;

CREATE OR REPLACE FUNCTION quota_check_type(p_quota_type TEXT) RETURNS VOID
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF p_quota_type IS NULL OR p_quota_type NOT IN ('regular', 'premium', 'image_gen', 'image_recognition', 'video', 'story') THEN
        RAISE EXCEPTION 'unknown quota type: %', p_quota_type USING ERRCODE = '22023';
    END IF;
END;
$$;

-- The highest tier a user is entitled to right now, across Stripe and RevenueCat.
CREATE OR REPLACE FUNCTION effective_tier(p_user_id UUID) RETURNS INTEGER
LANGUAGE sql STABLE AS $$
    SELECT COALESCE(MAX(s.tier), 0)
    FROM subscriptions s
    WHERE s.user_id = p_user_id
      AND (
            (s.status IN ('active', 'trialing')
             AND (s.source <> 'revenuecat' OR s.current_period_end IS NULL OR s.current_period_end > now()))
         OR (s.status = 'past_due' AND s.grace_until > now())
      )
$$;

-- The remaining allowance of one type in a row.
CREATE OR REPLACE FUNCTION quota_column(q user_quotas, p_quota_type TEXT) RETURNS INTEGER
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE p_quota_type
        WHEN 'regular' THEN q.quota
        WHEN 'premium' THEN q.quota_premium_model
        WHEN 'image_gen' THEN q.quota_image_generation
        WHEN 'image_recognition' THEN q.quota_image_recognition
        WHEN 'video' THEN q.quota_video
        WHEN 'story' THEN q.quota_story
    END
$$;

-- What a user can still spend of one type: allowance + bonus (regular), -1 if unlimited.
CREATE OR REPLACE FUNCTION quota_spendable(q user_quotas, p_quota_type TEXT) RETURNS INTEGER
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN quota_column(q, p_quota_type) = -1 THEN -1
                WHEN p_quota_type = 'regular' THEN q.quota + q.bonus_quota
                ELSE quota_column(q, p_quota_type) END
$$;

CREATE OR REPLACE FUNCTION quota_snapshot_json(q user_quotas) RETURNS JSONB
LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_build_object(
        'regular', quota_spendable(q, 'regular'), 'premium', q.quota_premium_model,
        'image_gen', q.quota_image_generation, 'image_recognition', q.quota_image_recognition,
        'video', q.quota_video, 'story', q.quota_story, 'bonus', q.bonus_quota)
$$;

-- Set a user's allowances to a tier's, start a new period, emit quota.reset. Caller holds the row lock
-- (or the row does not exist yet). Returns the new row.
CREATE OR REPLACE FUNCTION quota_apply_tier(p_user_id UUID, p_tier INTEGER, p_reset_at TIMESTAMPTZ, p_reason TEXT)
RETURNS user_quotas
LANGUAGE plpgsql AS $$
DECLARE
    v_tier INTEGER := GREATEST(0, LEAST(2, COALESCE(p_tier, 0)));
    v_period TEXT := CASE WHEN v_tier = 0 THEN 'daily' ELSE 'billing' END;
    v_reset TIMESTAMPTZ;
    a JSONB;
    q user_quotas;
BEGIN
    v_reset := CASE WHEN v_tier = 0 THEN quota_next_daily_reset()
                    ELSE COALESCE(p_reset_at, now() + interval '1 month') END;
    SELECT jsonb_object_agg(quota_type, allowance) INTO a FROM tier_quotas WHERE tier = v_tier;
    INSERT INTO user_quotas AS u (user_id, tier, quota, quota_premium_model, quota_image_generation,
                                  quota_image_recognition, quota_video, quota_story, period, last_reset, reset_at)
    VALUES (p_user_id, v_tier, (a->>'regular')::int, (a->>'premium')::int, (a->>'image_gen')::int,
            (a->>'image_recognition')::int, (a->>'video')::int, (a->>'story')::int, v_period, clock_timestamp(), v_reset)
    ON CONFLICT (user_id) DO UPDATE SET
        tier = EXCLUDED.tier, quota = EXCLUDED.quota, quota_premium_model = EXCLUDED.quota_premium_model,
        quota_image_generation = EXCLUDED.quota_image_generation,
        quota_image_recognition = EXCLUDED.quota_image_recognition, quota_video = EXCLUDED.quota_video,
        quota_story = EXCLUDED.quota_story, period = EXCLUDED.period, last_reset = EXCLUDED.last_reset,
        reset_at = EXCLUDED.reset_at, updated_at = now()
    RETURNING * INTO q;
    PERFORM payment_emit('quota.reset', p_user_id, jsonb_build_object(
        'tier', v_tier, 'reason', p_reason, 'period', v_period,
        'reset_at', to_char(v_reset AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
        'remaining', quota_snapshot_json(q)));
    RETURN q;
END;
$$;

-- The user's row, locked; created lazily (at the user's effective tier) so a user whose
-- user.created event has not arrived yet is not locked out; a due daily reset is applied.
CREATE OR REPLACE FUNCTION quota_lock_row(p_user_id UUID) RETURNS user_quotas
LANGUAGE plpgsql AS $$
DECLARE
    q user_quotas;
BEGIN
    SELECT * INTO q FROM user_quotas WHERE user_id = p_user_id FOR UPDATE;
    IF NOT FOUND THEN
        PERFORM pg_advisory_xact_lock(hashtextextended('user_quotas:' || p_user_id::text, 0));
        SELECT * INTO q FROM user_quotas WHERE user_id = p_user_id FOR UPDATE;
        IF NOT FOUND THEN
            q := quota_apply_tier(p_user_id, effective_tier(p_user_id), NULL, 'created');
        END IF;
    END IF;
    IF q.period = 'daily' AND q.reset_at IS NOT NULL AND q.reset_at <= now() THEN
        q := quota_apply_tier(p_user_id, q.tier, NULL, 'daily');
    END IF;
    RETURN q;
END;
$$;

-- Give an unfinished reservation's amount (or part of it) back. Caller holds the reservation's lock.
CREATE OR REPLACE FUNCTION quota_give_back(r quota_reservations, p_amount INTEGER) RETURNS user_quotas
LANGUAGE plpgsql AS $$
DECLARE
    q user_quotas;
    v_bonus INTEGER;
    v_main INTEGER;
BEGIN
    SELECT * INTO q FROM user_quotas WHERE user_id = r.user_id FOR UPDATE;
    IF NOT FOUND OR r.unlimited OR p_amount <= 0 THEN
        RETURN q;
    END IF;
    -- Spent main first, then bonus: give back in reverse. A reset since the reserve already
    -- refilled the main allowance: only the bonus part comes back then.
    v_bonus := LEAST(r.from_bonus, p_amount);
    v_main := CASE WHEN q.last_reset > r.period_start THEN 0 ELSE p_amount - v_bonus END;
    UPDATE user_quotas u SET
        quota = CASE WHEN r.quota_type = 'regular' AND u.quota <> -1 THEN u.quota + v_main ELSE u.quota END,
        quota_premium_model = CASE WHEN r.quota_type = 'premium' AND u.quota_premium_model <> -1 THEN u.quota_premium_model + v_main ELSE u.quota_premium_model END,
        quota_image_generation = CASE WHEN r.quota_type = 'image_gen' AND u.quota_image_generation <> -1 THEN u.quota_image_generation + v_main ELSE u.quota_image_generation END,
        quota_image_recognition = CASE WHEN r.quota_type = 'image_recognition' AND u.quota_image_recognition <> -1 THEN u.quota_image_recognition + v_main ELSE u.quota_image_recognition END,
        quota_video = CASE WHEN r.quota_type = 'video' AND u.quota_video <> -1 THEN u.quota_video + v_main ELSE u.quota_video END,
        quota_story = CASE WHEN r.quota_type = 'story' AND u.quota_story <> -1 THEN u.quota_story + v_main ELSE u.quota_story END,
        bonus_quota = u.bonus_quota + v_bonus,
        updated_at = now()
    WHERE u.user_id = r.user_id
    RETURNING * INTO q;
    RETURN q;
END;
$$;

-- Expired reservations (never settled nor released) are given back. One user's, or all.
-- Returns the users whose quota changed (for cache invalidation).
CREATE OR REPLACE FUNCTION quota_expire_reservations(p_user_id UUID DEFAULT NULL, p_limit INTEGER DEFAULT 1000)
RETURNS SETOF UUID
LANGUAGE plpgsql AS $$
DECLARE
    r quota_reservations;
BEGIN
    FOR r IN
        SELECT * FROM quota_reservations
        WHERE state = 'held' AND expires_at <= now() AND (p_user_id IS NULL OR user_id = p_user_id)
        ORDER BY expires_at
        LIMIT p_limit
        FOR UPDATE SKIP LOCKED
    LOOP
        PERFORM quota_give_back(r, r.amount);
        UPDATE quota_reservations SET state = 'expired', charged = 0, finished_at = now() WHERE id = r.id;
        RETURN NEXT r.user_id;
    END LOOP;
END;
$$;

-- ------------------------------------------------------------------------------------ the contract

-- Atomic: reserves p_amount when that much remains (or the type is unlimited) and returns the
-- reservation id; otherwise a row with reservation_id NULL and what remains. Concurrent calls
-- serialise on the user's row lock, so no sequence of calls can spend more than remains.
CREATE OR REPLACE FUNCTION quota_reserve(p_user_id UUID, p_quota_type TEXT, p_amount INTEGER,
                                         p_ttl_seconds INTEGER DEFAULT 600)
RETURNS TABLE (reservation_id UUID, remaining INTEGER, reset_at TIMESTAMPTZ)
LANGUAGE plpgsql AS $$
DECLARE
    q user_quotas;
    v_main INTEGER;
    v_spendable INTEGER;
    v_take_main INTEGER;
    v_take_bonus INTEGER;
    v_id UUID;
    v_left INTEGER;
BEGIN
    PERFORM quota_check_type(p_quota_type);
    IF p_amount IS NULL OR p_amount < 0 THEN
        RAISE EXCEPTION 'quota amount must be >= 0, got %', p_amount USING ERRCODE = '22023';
    END IF;
    IF EXISTS (SELECT 1 FROM quota_reservations x
               WHERE x.user_id = p_user_id AND x.state = 'held' AND x.expires_at <= now()) THEN
        PERFORM quota_expire_reservations(p_user_id);
    END IF;
    q := quota_lock_row(p_user_id);
    v_main := quota_column(q, p_quota_type);
    v_spendable := quota_spendable(q, p_quota_type);
    IF v_main = -1 THEN
        INSERT INTO quota_reservations (user_id, quota_type, amount, unlimited, period_start, expires_at)
        VALUES (p_user_id, p_quota_type, p_amount, true, q.last_reset, now() + make_interval(secs => p_ttl_seconds))
        RETURNING id INTO v_id;
        RETURN QUERY SELECT v_id, -1, q.reset_at;
        RETURN;
    END IF;
    IF v_spendable < p_amount THEN
        RETURN QUERY SELECT NULL::UUID, v_spendable, q.reset_at;
        RETURN;
    END IF;
    v_take_main := LEAST(v_main, p_amount);
    v_take_bonus := p_amount - v_take_main;
    UPDATE user_quotas u SET
        quota = CASE WHEN p_quota_type = 'regular' THEN u.quota - v_take_main ELSE u.quota END,
        quota_premium_model = CASE WHEN p_quota_type = 'premium' THEN u.quota_premium_model - v_take_main ELSE u.quota_premium_model END,
        quota_image_generation = CASE WHEN p_quota_type = 'image_gen' THEN u.quota_image_generation - v_take_main ELSE u.quota_image_generation END,
        quota_image_recognition = CASE WHEN p_quota_type = 'image_recognition' THEN u.quota_image_recognition - v_take_main ELSE u.quota_image_recognition END,
        quota_video = CASE WHEN p_quota_type = 'video' THEN u.quota_video - v_take_main ELSE u.quota_video END,
        quota_story = CASE WHEN p_quota_type = 'story' THEN u.quota_story - v_take_main ELSE u.quota_story END,
        bonus_quota = u.bonus_quota - v_take_bonus,
        updated_at = now()
    WHERE u.user_id = p_user_id;
    INSERT INTO quota_reservations (user_id, quota_type, amount, from_bonus, period_start, expires_at)
    VALUES (p_user_id, p_quota_type, p_amount, v_take_bonus, q.last_reset, now() + make_interval(secs => p_ttl_seconds))
    RETURNING id INTO v_id;
    v_left := v_spendable - p_amount;
    IF v_left = 0 AND p_amount > 0 THEN
        PERFORM payment_emit('quota.depleted', p_user_id, jsonb_build_object(
            'quota_type', p_quota_type, 'remaining', 0, 'tier', q.tier,
            'reset_at', to_char(q.reset_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')));
    END IF;
    RETURN QUERY SELECT v_id, v_left, q.reset_at;
END;
$$;

-- Charges p_actual (NULL = the amount reserved; capped at it) and gives the difference back.
-- Idempotent: a finished reservation changes nothing. Returns what remains of its type
-- (-1 unlimited), or NULL for an unknown reservation.
CREATE OR REPLACE FUNCTION quota_settle(p_reservation_id UUID, p_actual INTEGER DEFAULT NULL) RETURNS INTEGER
LANGUAGE plpgsql AS $$
DECLARE
    r quota_reservations;
    q user_quotas;
    v_charge INTEGER;
BEGIN
    SELECT * INTO r FROM quota_reservations WHERE id = p_reservation_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF r.state <> 'held' THEN
        SELECT * INTO q FROM user_quotas WHERE user_id = r.user_id;
        RETURN quota_spendable(q, r.quota_type);
    END IF;
    v_charge := LEAST(GREATEST(COALESCE(p_actual, r.amount), 0), r.amount);
    q := quota_give_back(r, r.amount - v_charge);
    UPDATE user_quotas SET
        tokens_used = tokens_used + CASE WHEN r.quota_type = 'regular' THEN v_charge ELSE 0 END,
        premium_tokens_used = premium_tokens_used + CASE WHEN r.quota_type = 'premium' THEN v_charge ELSE 0 END
    WHERE user_id = r.user_id AND r.quota_type IN ('regular', 'premium')
    RETURNING * INTO q;
    IF q.user_id IS NULL THEN
        SELECT * INTO q FROM user_quotas WHERE user_id = r.user_id;
    END IF;
    UPDATE quota_reservations SET state = 'settled', charged = v_charge, finished_at = now() WHERE id = r.id;
    RETURN quota_spendable(q, r.quota_type);
END;
$$;

-- Gives the whole reservation back. Idempotent. Returns what remains (NULL for an unknown id).
CREATE OR REPLACE FUNCTION quota_release(p_reservation_id UUID) RETURNS INTEGER
LANGUAGE plpgsql AS $$
DECLARE
    r quota_reservations;
    q user_quotas;
BEGIN
    SELECT * INTO r FROM quota_reservations WHERE id = p_reservation_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF r.state = 'held' THEN
        PERFORM quota_give_back(r, r.amount);
        UPDATE quota_reservations SET state = 'released', charged = 0, finished_at = now() WHERE id = r.id;
    END IF;
    SELECT * INTO q FROM user_quotas WHERE user_id = r.user_id;
    RETURN quota_spendable(q, r.quota_type);
END;
$$;

-- Resets. Without a user: every free (daily) row whose reset time has passed gets its daily
-- allowance back (the sweeper calls this; quota_reserve also applies a due reset lazily). With a
-- user: that user's allowances become p_tier's (default: the effective tier) for a new period
-- ending p_reset_at (paid) or at the next UTC midnight (free). Emits quota.reset per user reset;
-- returns the users reset.
CREATE OR REPLACE FUNCTION quota_reset(p_user_id UUID DEFAULT NULL, p_tier INTEGER DEFAULT NULL,
                                       p_reset_at TIMESTAMPTZ DEFAULT NULL, p_reason TEXT DEFAULT NULL,
                                       p_limit INTEGER DEFAULT 1000)
RETURNS SETOF UUID
LANGUAGE plpgsql AS $$
DECLARE
    q user_quotas;
BEGIN
    IF p_user_id IS NOT NULL THEN
        PERFORM 1 FROM user_quotas WHERE user_id = p_user_id FOR UPDATE;
        PERFORM quota_apply_tier(p_user_id, COALESCE(p_tier, effective_tier(p_user_id)), p_reset_at,
                                 COALESCE(p_reason, 'period'));
        RETURN NEXT p_user_id;
        RETURN;
    END IF;
    FOR q IN
        SELECT * FROM user_quotas
        WHERE period = 'daily' AND reset_at <= now()
        ORDER BY reset_at
        LIMIT p_limit
        FOR UPDATE SKIP LOCKED
    LOOP
        PERFORM quota_apply_tier(q.user_id, q.tier, NULL, COALESCE(p_reason, 'daily'));
        RETURN NEXT q.user_id;
    END LOOP;
END;
$$;

-- Read side for GET /quota and QuotaClient.remaining(): one row per type (row created lazily,
-- due daily reset applied).
CREATE OR REPLACE FUNCTION quota_snapshot(p_user_id UUID)
RETURNS TABLE (quota_type TEXT, remaining INTEGER, reset_at TIMESTAMPTZ, tier INTEGER, bonus INTEGER)
LANGUAGE plpgsql AS $$
DECLARE
    q user_quotas;
BEGIN
    q := quota_lock_row(p_user_id);
    RETURN QUERY
        SELECT t.quota_type, quota_spendable(q, t.quota_type),
               CASE WHEN quota_column(q, t.quota_type) = -1 THEN NULL ELSE q.reset_at END, q.tier, q.bonus_quota
        FROM unnest(ARRAY['regular', 'premium', 'image_gen', 'image_recognition', 'video', 'story']) AS t(quota_type);
END;
$$;

-- Bonus credits (regular messages that never reset), e.g. for referrals. Emits quota.updated.
CREATE OR REPLACE FUNCTION quota_add_bonus(p_user_id UUID, p_amount INTEGER, p_reason TEXT) RETURNS INTEGER
LANGUAGE plpgsql AS $$
DECLARE
    q user_quotas;
BEGIN
    IF p_amount IS NULL OR p_amount <= 0 THEN
        RAISE EXCEPTION 'bonus must be > 0' USING ERRCODE = '22023';
    END IF;
    PERFORM quota_lock_row(p_user_id);
    UPDATE user_quotas SET bonus_quota = bonus_quota + p_amount, updated_at = now()
    WHERE user_id = p_user_id RETURNING * INTO q;
    PERFORM payment_emit('quota.updated', p_user_id, jsonb_build_object(
        'reason', p_reason, 'bonus_added', p_amount, 'tier', q.tier, 'remaining', quota_snapshot_json(q)));
    RETURN quota_spendable(q, 'regular');
END;
$$;
