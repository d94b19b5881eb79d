-- Ingestion writes fewer index entries, and action XP has a daily cap.

-- idx_user_progress_xp (xp DESC) duplicates idx_user_progress_xp_top (xp DESC, user_id): every XP
-- change wrote both.
DROP INDEX IF EXISTS idx_user_progress_xp;

-- leaderboard_scores keyed (user_id, board): the key serves the upsert and a user's erasure, so
-- the separate user_id index (a third entry per score change) goes.
ALTER TABLE leaderboard_scores DROP CONSTRAINT IF EXISTS leaderboard_scores_pkey;
ALTER TABLE leaderboard_scores ADD PRIMARY KEY (user_id, board);
DROP INDEX IF EXISTS idx_leaderboard_scores_user;

-- The daily cap on XP from actions (messages, conversations, images, stories, check-ins; not
-- achievements or flip rewards): the action XP granted on the user's local day `xp_day`.
ALTER TABLE user_progress ADD COLUMN IF NOT EXISTS xp_day DATE;
ALTER TABLE user_progress ADD COLUMN IF NOT EXISTS xp_today INTEGER NOT NULL DEFAULT 0;

-- rules.level_for_xp in SQL, for the statement that adds XP (progress.save): the largest L with
-- 50 * L * (L - 1) <= xp, i.e. floor((5 + sqrt(25 + 2 * xp)) / 10), with an exact integer root
-- (numeric sqrt, floored). tests/analytics/test_xp_cap.py compares the two.
CREATE OR REPLACE FUNCTION analytics_level_for_xp(xp BIGINT) RETURNS INTEGER
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT ((5 + floor(sqrt(25 + 2 * GREATEST(xp, 0)::numeric)))::bigint / 10)::integer
$$;

-- A range ending today: WAU/MAU are yesterday's users of the 6 / 29 days ending yesterday (stored
-- here by the daily task) plus today's users not among them (platform.py), not a distinct count
-- over a month of day rows. NULL on rows stored before this migration (counted then).
ALTER TABLE platform_daily_actives ADD COLUMN IF NOT EXISTS wau_trailing BIGINT;
ALTER TABLE platform_daily_actives ADD COLUMN IF NOT EXISTS mau_trailing BIGINT;

-- The user index of activity_buckets (erasure) carries the granularity and bucket too: the latest
-- day a user was active before a given day is then one backward index probe (rollups.newcomers).
CREATE INDEX IF NOT EXISTS idx_activity_buckets_user_day ON activity_buckets (user_id, granularity, bucket);
DROP INDEX IF EXISTS idx_activity_buckets_user;

-- Room on each page for the consumer's updates to stay heap-only (HOT: no index entry written)
-- when they change no indexed column: counters, last-seen times, histogram counts. Applies to
-- pages written from now on.
ALTER TABLE user_analytics SET (fillfactor = 80);
ALTER TABLE user_characters SET (fillfactor = 80);
ALTER TABLE conversation_stats SET (fillfactor = 80);
ALTER TABLE character_stats SET (fillfactor = 80);
ALTER TABLE character_daily SET (fillfactor = 80);
ALTER TABLE platform_metrics SET (fillfactor = 80);
ALTER TABLE metric_histogram SET (fillfactor = 80);
ALTER TABLE metric_histogram_blocks SET (fillfactor = 80);
ALTER TABLE user_progress SET (fillfactor = 80);
