-- The relay claims a batch with one UPDATE (claimed_until) instead of holding a transaction
-- across the publish: two round trips per batch instead of four, and a relay that dies mid-batch
-- leaves rows that become claimable again when the claim expires (consumers are idempotent).
ALTER TABLE outbox_events ADD COLUMN IF NOT EXISTS claimed_until TIMESTAMPTZ;
