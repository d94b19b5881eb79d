-- A customer.subscription.* event: record it (false when it was already applied: nothing else is
-- done) and, the first time, take the subscription's lock and read its row (NULL before it
-- exists), in one round trip instead of two.
CREATE OR REPLACE FUNCTION payment_record_subscription_event(p_provider TEXT, p_event_id TEXT, p_event_type TEXT,
                                                             p_created TIMESTAMPTZ, p_outcome TEXT,
                                                             p_source TEXT, p_external_id TEXT)
RETURNS TABLE (recorded BOOLEAN, sub subscriptions)
LANGUAGE plpgsql AS $$
DECLARE
    s subscriptions;
    v_found BOOLEAN;
BEGIN
    INSERT INTO webhook_events (provider, event_id, event_type, event_created, outcome)
    VALUES (p_provider, p_event_id, p_event_type, p_created, p_outcome)
    ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        RETURN QUERY SELECT false, NULL::subscriptions;
        RETURN;
    END IF;
    SELECT * INTO s FROM payment_lock_subscription(p_source, p_external_id);
    v_found := FOUND;
    RETURN QUERY SELECT true, CASE WHEN v_found THEN s END;
END;
$$;
