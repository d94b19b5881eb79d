-- When the Stripe customer's email was last set from a user.updated event (the event's time): an
-- older event delivered late (a retry) does not put back an address the user has changed since.
ALTER TABLE stripe_customers ADD COLUMN IF NOT EXISTS email_as_of TIMESTAMPTZ;
