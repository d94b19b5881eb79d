-- Many reserves in one call: QuotaClient coalesces the reserves that arrive while one is in flight
-- into one round trip (docs/payment.md, "Quota client"). Each item is applied exactly as
-- quota_reserve() applies it, in a subtransaction of its own: an item that fails rolls back only
-- itself and comes back with its SQLSTATE and message; the others stand. Items are applied in
-- user-id order (then position), so batches running at the same time take user rows in one order
-- and cannot deadlock one another; two items of one user see each other (the second sees what the
-- first left). One row per item, `item` = its 1-based position in the arrays.
-- Callers keep a batch under 64 items: each item's subtransaction takes a subtransaction id, and
-- more than 64 in one transaction overflow PostgreSQL's per-backend cache of them.
CREATE OR REPLACE FUNCTION quota_reserve_many(p_user_ids UUID[], p_quota_types TEXT[], p_amounts INTEGER[],
                                              p_ttl_seconds INTEGER DEFAULT 600,
                                              p_async_commit BOOLEAN DEFAULT false)
RETURNS TABLE (item INTEGER, reservation_id UUID, remaining INTEGER, reset_at TIMESTAMPTZ,
               error_code TEXT, error_message TEXT)
LANGUAGE plpgsql AS $$
DECLARE
    v RECORD;
    r RECORD;
BEGIN
    IF cardinality(p_user_ids) IS DISTINCT FROM cardinality(p_quota_types)
       OR cardinality(p_user_ids) IS DISTINCT FROM cardinality(p_amounts) THEN
        RAISE EXCEPTION 'quota_reserve_many: arrays of different lengths' USING ERRCODE = '22023';
    END IF;
    IF p_async_commit THEN
        PERFORM set_config('synchronous_commit', 'off', true);
    END IF;
    FOR v IN
        SELECT t.ord::INTEGER AS ord, t.user_id, t.quota_type, t.amount
        FROM unnest(p_user_ids, p_quota_types, p_amounts) WITH ORDINALITY AS t(user_id, quota_type, amount, ord)
        ORDER BY t.user_id, t.ord
    LOOP
        item := v.ord;
        BEGIN
            SELECT x.reservation_id, x.remaining, x.reset_at INTO r
            FROM quota_reserve(v.user_id, v.quota_type, v.amount, p_ttl_seconds, false) AS x;
            reservation_id := r.reservation_id;
            remaining := r.remaining;
            reset_at := r.reset_at;
            error_code := NULL;
            error_message := NULL;
        EXCEPTION WHEN OTHERS THEN
            reservation_id := NULL;
            remaining := NULL;
            reset_at := NULL;
            error_code := SQLSTATE;
            error_message := SQLERRM;
        END;
        RETURN NEXT;
    END LOOP;
END;
$$;
