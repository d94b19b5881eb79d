-- Email change for a signed-in user: the code goes to the new address, which waits here until the
-- code comes back (purpose 'email_change'; one pending change per user, a new request replaces it).
ALTER TABLE otp_codes ADD COLUMN IF NOT EXISTS new_email TEXT CHECK (new_email IS NULL OR new_email = lower(new_email));
ALTER TABLE otp_codes DROP CONSTRAINT IF EXISTS otp_codes_purpose_check;
ALTER TABLE otp_codes ADD CONSTRAINT otp_codes_purpose_check CHECK (purpose IN ('verify', 'reset', 'email_change'));
