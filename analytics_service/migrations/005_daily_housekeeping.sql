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
