-- shared/erasure.py: a user's data is erased a second time a request-length after user.deleted,
-- to catch what a request authenticated just before the deletion was known wrote after the first
-- erasure. Inserted in the first erasure's transaction; the row goes with the second pass.
CREATE TABLE IF NOT EXISTS erasure_second_passes (
    user_id    TEXT PRIMARY KEY,
    due_at     TIMESTAMPTZ NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS idx_erasure_second_passes_due ON erasure_second_passes (due_at);
