-- What the daily task (analytics_service/daily.py) stores: each user's engagement tier, the
-- platform's DAU/WAU/MAU per UTC day, and the day each task last ran (so two workers, or a
-- restart, run it once per day). None of these are rollups: a replay leaves them alone.

CREATE TABLE IF NOT EXISTS user_engagement (
    user_id     UUID PRIMARY KEY,
    tier        TEXT NOT NULL CHECK (tier IN ('new', 'casual', 'regular', 'power', 'at_risk')),
    computed_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE IF NOT EXISTS platform_daily_actives (
    day         DATE PRIMARY KEY,
    dau         BIGINT NOT NULL,
    wau         BIGINT NOT NULL,
    mau         BIGINT NOT NULL,
    computed_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE IF NOT EXISTS analytics_daily_runs (
    task        TEXT PRIMARY KEY,
    last_run_on DATE NOT NULL,
    finished_at TIMESTAMPTZ NOT NULL,
    summary     JSONB NOT NULL DEFAULT '{}'::jsonb
);

-- A rank from the histograms (users above `value`, and all users of `metric`): the two range
-- scans of repositories/ranks.py, as SQL functions so /analytics/me reads everything in one
-- statement (LANGUAGE sql, STABLE; with sub-selects they are not inlined, each runs its two
-- index range scans).
CREATE OR REPLACE FUNCTION analytics_rank_above(p_metric TEXT, p_value BIGINT) RETURNS BIGINT AS $$
    SELECT (SELECT COALESCE(sum(users), 0) FROM metric_histogram_blocks
             WHERE metric = p_metric AND block > (p_value >> 10))
         + (SELECT COALESCE(sum(users), 0) FROM metric_histogram
             WHERE metric = p_metric AND value > p_value AND value < (((p_value >> 10) + 1) << 10))
$$ LANGUAGE sql STABLE;

CREATE OR REPLACE FUNCTION analytics_rank_total(p_metric TEXT) RETURNS BIGINT AS $$
    SELECT COALESCE(sum(users), 0) FROM metric_histogram_blocks WHERE metric = p_metric
$$ LANGUAGE sql STABLE;
