-- Fewer round trips per webhook: the subscription lock and read in one call, and the quota-row
-- lock, the subscription upsert and the tier settlement in another (were five statements).

-- Serialise every change to one subscription (also before its row exists), then read it. A
-- PL/pgSQL function takes a new snapshot for each statement, so the read sees what the previous
-- holder of the lock committed (one SQL statement taking the lock and reading would not).
CREATE OR REPLACE FUNCTION payment_lock_subscription(p_source TEXT, p_external_id TEXT) RETURNS SETOF subscriptions
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('sub:' || p_source || ':' || p_external_id, 0));
    RETURN QUERY SELECT * FROM subscriptions WHERE source = p_source AND external_id = p_external_id;
END;
$$;

-- Save one subscription's state (caller holds payment_lock_subscription's lock): lock the user's
-- quota row (the tier its allowances were set for is `tier_before`), upsert the row, then settle the
-- user's effective tier (`tier_after`); when it changed, the quotas are reset to it (paid: for the
-- period of the subscription granting it; free: daily), which emits quota.reset.
-- p_fields: the subscriptions columns user_id .. source_updated_at as JSON.
CREATE OR REPLACE FUNCTION payment_save_subscription(p_source TEXT, p_external_id TEXT, p_fields JSONB)
RETURNS TABLE (sub subscriptions, tier_before INTEGER, tier_after INTEGER)
LANGUAGE plpgsql AS $$
DECLARE
    f subscriptions := jsonb_populate_record(NULL::subscriptions, p_fields);
    s subscriptions;
    v_before INTEGER;
    v_after INTEGER;
BEGIN
    v_before := (quota_lock_row(f.user_id)).tier;
    INSERT INTO subscriptions AS x (source, external_id, user_id, stripe_customer_id, stripe_subscription_id,
                                    stripe_item_id, price_id, tier, status, current_period_end, cancel_at_period_end,
                                    grace_until, trial_end, pending_tier, pending_tier_at, source_updated_at)
    VALUES (p_source, p_external_id, f.user_id, f.stripe_customer_id, f.stripe_subscription_id, f.stripe_item_id,
            f.price_id, f.tier, f.status, f.current_period_end, f.cancel_at_period_end, f.grace_until, f.trial_end,
            f.pending_tier, f.pending_tier_at, f.source_updated_at)
    ON CONFLICT (source, external_id) DO UPDATE SET
        user_id = EXCLUDED.user_id, stripe_customer_id = EXCLUDED.stripe_customer_id,
        stripe_subscription_id = EXCLUDED.stripe_subscription_id, stripe_item_id = EXCLUDED.stripe_item_id,
        price_id = EXCLUDED.price_id, tier = EXCLUDED.tier, status = EXCLUDED.status,
        current_period_end = EXCLUDED.current_period_end, cancel_at_period_end = EXCLUDED.cancel_at_period_end,
        grace_until = EXCLUDED.grace_until, trial_end = EXCLUDED.trial_end, pending_tier = EXCLUDED.pending_tier,
        pending_tier_at = EXCLUDED.pending_tier_at, source_updated_at = EXCLUDED.source_updated_at,
        updated_at = now()
    RETURNING * INTO s;
    v_after := effective_tier(f.user_id);
    IF v_after <> v_before THEN
        PERFORM quota_reset(f.user_id, v_after,
            (SELECT max(current_period_end) FROM subscriptions
             WHERE user_id = f.user_id AND tier = v_after AND status IN ('active', 'trialing', 'past_due')),
            CASE WHEN v_after > v_before THEN 'upgrade' ELSE 'downgrade' END);
    END IF;
    RETURN QUERY SELECT s, v_before, v_after;
END;
$$;
