-- Quota reserve/settle/release may commit asynchronously (p_async_commit => true): QuotaClient
-- calls each in its own single-statement transaction and passes true, so a commit does not wait
-- for the WAL flush. A database crash can then forget the last fraction of a second of quota
-- operations, always as whole transactions (a forgotten reserve is simply not made; a forgotten
-- settle leaves the reservation held until it expires and is given back): never an overspend.
-- Called inside a caller's own transaction, leave it false (the default) or that whole
-- transaction commits asynchronously too. Money (webhooks, payments) always commits synchronously.
DROP FUNCTION IF EXISTS quota_reserve(UUID, TEXT, INTEGER, INTEGER);
DROP FUNCTION IF EXISTS quota_settle(UUID, INTEGER);
DROP FUNCTION IF EXISTS quota_release(UUID);

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

CREATE OR REPLACE FUNCTION quota_settle(p_reservation_id UUID, p_actual INTEGER DEFAULT NULL,
                                        p_async_commit BOOLEAN DEFAULT false) RETURNS INTEGER
LANGUAGE plpgsql AS $$
DECLARE
    r quota_reservations;
    q user_quotas;
    v_charge INTEGER;
BEGIN
    IF p_async_commit THEN
        PERFORM set_config('synchronous_commit', 'off', true);
    END IF;
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

CREATE OR REPLACE FUNCTION quota_release(p_reservation_id UUID, p_async_commit BOOLEAN DEFAULT false) RETURNS INTEGER
LANGUAGE plpgsql AS $$
DECLARE
    r quota_reservations;
    q user_quotas;
BEGIN
    IF p_async_commit THEN
        PERFORM set_config('synchronous_commit', 'off', true);
    END IF;
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
