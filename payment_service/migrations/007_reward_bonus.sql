-- Bonus balances for premium messages and image generation, next to the regular one
-- (bonus_quota): flip-ticket rewards (Analytics' reward.granted) add to them, exactly once per
-- reward id (reward_grants). A reservation spends the tier's allowance first, then the type's
-- bonus; a release or a partial settle gives back in reverse (bonus to its own balance).
-- quota_reserve and quota_give_back are the previous versions (003, 001) with the bonus column
-- chosen by quota type; quota_reserve_many calls quota_reserve, so it follows.
ALTER TABLE user_quotas
    ADD COLUMN IF NOT EXISTS bonus_premium INTEGER NOT NULL DEFAULT 0 CHECK (bonus_premium >= 0),
    ADD COLUMN IF NOT EXISTS bonus_image_gen INTEGER NOT NULL DEFAULT 0 CHECK (bonus_image_gen >= 0);

CREATE TABLE IF NOT EXISTS reward_grants (
    reward_id  UUID PRIMARY KEY,
    user_id    UUID NOT NULL,
    quota_type TEXT NOT NULL,
    amount     INTEGER NOT NULL CHECK (amount > 0),
    reason     TEXT,
    granted_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS idx_reward_grants_user ON reward_grants (user_id);

CREATE OR REPLACE FUNCTION quota_bonus(q user_quotas, p_quota_type TEXT) RETURNS INTEGER
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE p_quota_type
        WHEN 'regular' THEN q.bonus_quota
        WHEN 'premium' THEN q.bonus_premium
        WHEN 'image_gen' THEN q.bonus_image_gen
        ELSE 0
    END
$$;

-- What a user can still spend of one type: allowance + that type's bonus, -1 if unlimited.
CREATE OR REPLACE FUNCTION quota_spendable(q user_quotas, p_quota_type TEXT) RETURNS INTEGER
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN quota_column(q, p_quota_type) = -1 THEN -1
                ELSE quota_column(q, p_quota_type) + quota_bonus(q, p_quota_type) END
$$;

CREATE OR REPLACE FUNCTION quota_snapshot_json(q user_quotas) RETURNS JSONB
LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_build_object(
        'regular', quota_spendable(q, 'regular'), 'premium', quota_spendable(q, 'premium'),
        'image_gen', quota_spendable(q, 'image_gen'), 'image_recognition', q.quota_image_recognition,
        'video', q.quota_video, 'story', q.quota_story, 'bonus', q.bonus_quota,
        'bonus_premium', q.bonus_premium, 'bonus_image_gen', q.bonus_image_gen)
$$;

CREATE OR REPLACE FUNCTION quota_reserve(p_user_id UUID, p_quota_type TEXT, p_amount INTEGER,
                                         p_ttl_seconds INTEGER DEFAULT 600,
                                         p_async_commit BOOLEAN DEFAULT false)
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
    IF p_async_commit THEN
        PERFORM set_config('synchronous_commit', 'off', true);
    END IF;
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
        bonus_quota = CASE WHEN p_quota_type = 'regular' THEN u.bonus_quota - v_take_bonus ELSE u.bonus_quota END,
        bonus_premium = CASE WHEN p_quota_type = 'premium' THEN u.bonus_premium - v_take_bonus ELSE u.bonus_premium END,
        bonus_image_gen = CASE WHEN p_quota_type = 'image_gen' THEN u.bonus_image_gen - v_take_bonus ELSE u.bonus_image_gen END,
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
        bonus_quota = CASE WHEN r.quota_type = 'regular' THEN u.bonus_quota + v_bonus ELSE u.bonus_quota END,
        bonus_premium = CASE WHEN r.quota_type = 'premium' THEN u.bonus_premium + v_bonus ELSE u.bonus_premium END,
        bonus_image_gen = CASE WHEN r.quota_type = 'image_gen' THEN u.bonus_image_gen + v_bonus ELSE u.bonus_image_gen END,
        updated_at = now()
    WHERE u.user_id = r.user_id
    RETURNING * INTO q;
    RETURN q;
END;
$$;

-- A reward's credits (reward.granted), once per reward id whatever the redeliveries: true when
-- added now, false when that reward was already granted. Emits quota.updated.
CREATE OR REPLACE FUNCTION quota_grant_reward(p_reward_id UUID, p_user_id UUID, p_quota_type TEXT,
                                              p_amount INTEGER, p_reason TEXT)
RETURNS BOOLEAN
LANGUAGE plpgsql AS $$
DECLARE
    q user_quotas;
BEGIN
    IF p_quota_type IS NULL OR p_quota_type NOT IN ('regular', 'premium', 'image_gen') THEN
        RAISE EXCEPTION 'no bonus balance for quota type %', p_quota_type USING ERRCODE = '22023';
    END IF;
    IF p_amount IS NULL OR p_amount <= 0 THEN
        RAISE EXCEPTION 'bonus must be > 0' USING ERRCODE = '22023';
    END IF;
    INSERT INTO reward_grants (reward_id, user_id, quota_type, amount, reason)
    VALUES (p_reward_id, p_user_id, p_quota_type, p_amount, p_reason)
    ON CONFLICT (reward_id) DO NOTHING;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM quota_lock_row(p_user_id);
    UPDATE user_quotas SET
        bonus_quota = bonus_quota + CASE WHEN p_quota_type = 'regular' THEN p_amount ELSE 0 END,
        bonus_premium = bonus_premium + CASE WHEN p_quota_type = 'premium' THEN p_amount ELSE 0 END,
        bonus_image_gen = bonus_image_gen + CASE WHEN p_quota_type = 'image_gen' THEN p_amount ELSE 0 END,
        updated_at = now()
    WHERE user_id = p_user_id RETURNING * INTO q;
    PERFORM payment_emit('quota.updated', p_user_id, jsonb_build_object(
        'reason', p_reason, 'bonus_added', p_amount, 'quota_type', p_quota_type, 'tier', q.tier,
        'remaining', quota_snapshot_json(q)));
    RETURN true;
END;
$$;
