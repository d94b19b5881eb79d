-- A downgrade swaps the Stripe price without proration (the new price bills from the next period);
-- the paid-for tier stays until pending_tier_at, then pending_tier applies.
ALTER TABLE subscriptions ADD COLUMN IF NOT EXISTS pending_tier_at TIMESTAMPTZ;
CREATE INDEX IF NOT EXISTS idx_subscriptions_pending ON subscriptions (pending_tier_at) WHERE pending_tier IS NOT NULL;
