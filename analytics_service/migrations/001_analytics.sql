-- Analytics service's own database: raw events, rollups, progression.
-- Rollups (user_analytics, user_characters, user_active_days, conversation_stats,
-- character_stats, character_daily, activity_buckets, platform_metrics) are derived from
-- analytics_events only and can be rebuilt from it (python -m analytics_service.replay).
-- Progression (user_progress, user_achievements, flip_tickets) is state with consequences
-- (tickets granted, events sent) and is never rebuilt.

-- Every event once, as it arrived. Partitioned by month of the event's own timestamp;
-- partitions are created ahead by analytics_ensure_partition() (the consumer calls it for each
-- month a batch touches, so a late or early event still finds its partition).
CREATE TABLE IF NOT EXISTS analytics_events (
    event_id    UUID NOT NULL,
    event_type  TEXT NOT NULL,
    user_id     UUID,
    occurred_at TIMESTAMPTZ NOT NULL,
    received_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    source      TEXT,
    data        JSONB NOT NULL DEFAULT '{}'::jsonb,
    -- set when the user was deleted: the row keeps what platform totals need, under a random
    -- id that links to nobody, and no longer feeds per-user rollups.
    erased      BOOLEAN NOT NULL DEFAULT false
) PARTITION BY RANGE (occurred_at);
-- Erasure and per-user reads; the event id itself is unique through processed_events.
CREATE INDEX IF NOT EXISTS idx_analytics_events_user ON analytics_events (user_id);

-- Partitions are UTC months: bounds are UTC midnights whatever the session's TimeZone.
CREATE OR REPLACE FUNCTION analytics_ensure_partition(month_start DATE) RETURNS TEXT AS $$
DECLARE
    first_day DATE := date_trunc('month', month_start)::date;
    name TEXT := 'analytics_events_' || to_char(first_day, 'YYYY_MM');
BEGIN
    IF to_regclass(name) IS NULL THEN
        PERFORM pg_advisory_xact_lock(hashtext('analytics_events_partition'));
        IF to_regclass(name) IS NULL THEN
            EXECUTE format(
                'CREATE TABLE %I PARTITION OF analytics_events FOR VALUES FROM (%L) TO (%L)',
                name,
                to_char(first_day, 'YYYY-MM-DD') || ' 00:00:00+00',
                to_char(first_day + interval '1 month', 'YYYY-MM-DD') || ' 00:00:00+00');
        END IF;
    END IF;
    RETURN name;
END;
$$ LANGUAGE plpgsql;

-- This month and the next two exist from the start.
SELECT analytics_ensure_partition(((now() AT TIME ZONE 'UTC') + make_interval(months => m))::date)
  FROM generate_series(0, 2) AS m;

-- Per user (only the user's own, non-erased events).
CREATE TABLE IF NOT EXISTS user_analytics (
    user_id        UUID PRIMARY KEY,
    events         BIGINT NOT NULL DEFAULT 0,
    messages       BIGINT NOT NULL DEFAULT 0,
    conversations  BIGINT NOT NULL DEFAULT 0,
    characters     BIGINT NOT NULL DEFAULT 0,
    stories        BIGINT NOT NULL DEFAULT 0,
    images         BIGINT NOT NULL DEFAULT 0,
    upgrades       BIGINT NOT NULL DEFAULT 0,
    active_days    BIGINT NOT NULL DEFAULT 0,
    first_seen_at  TIMESTAMPTZ,
    last_active_at TIMESTAMPTZ
);

-- The days (UTC) a user was active: user_analytics.active_days counts new rows.
CREATE TABLE IF NOT EXISTS user_active_days (
    user_id UUID NOT NULL,
    day     DATE NOT NULL,
    PRIMARY KEY (user_id, day)
);

-- Characters a user talked to (messages each): user_analytics.characters and
-- character_stats.users count new rows. Kept under the random id after erasure.
CREATE TABLE IF NOT EXISTS user_characters (
    user_id   UUID NOT NULL,
    character TEXT NOT NULL,
    messages  BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, character)
);
CREATE INDEX IF NOT EXISTS idx_user_characters_character ON user_characters (character);

CREATE TABLE IF NOT EXISTS conversation_stats (
    conversation_id  UUID PRIMARY KEY,
    user_id          UUID,
    character        TEXT,
    messages         BIGINT NOT NULL DEFAULT 0,
    first_message_at TIMESTAMPTZ,
    last_message_at  TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS idx_conversation_stats_user ON conversation_stats (user_id);

CREATE TABLE IF NOT EXISTS character_stats (
    character     TEXT PRIMARY KEY,
    messages      BIGINT NOT NULL DEFAULT 0,
    conversations BIGINT NOT NULL DEFAULT 0,
    users         BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE IF NOT EXISTS character_daily (
    day       DATE NOT NULL,
    character TEXT NOT NULL,
    messages  BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (day, character)
);

-- Who was active in each UTC hour and day: platform_metrics.active_users counts new rows; WAU
-- and MAU are distinct counts over the day rows of a window.
CREATE TABLE IF NOT EXISTS activity_buckets (
    granularity TEXT NOT NULL CHECK (granularity IN ('hour', 'day')),
    bucket      TIMESTAMPTZ NOT NULL,
    user_id     UUID NOT NULL,
    PRIMARY KEY (granularity, bucket, user_id)
);
CREATE INDEX IF NOT EXISTS idx_activity_buckets_user ON activity_buckets (user_id);

-- Platform counters per UTC hour and day: events, messages, conversations, new_users, stories,
-- images, conversions, cancellations, revenue_cents, active_users.
CREATE TABLE IF NOT EXISTS platform_metrics (
    granularity TEXT NOT NULL CHECK (granularity IN ('hour', 'day')),
    bucket      TIMESTAMPTZ NOT NULL,
    metric      TEXT NOT NULL,
    value       BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (granularity, metric, bucket)
);

-- Progression --------------------------------------------------------------------------------

CREATE TABLE IF NOT EXISTS user_progress (
    user_id           UUID PRIMARY KEY,
    timezone          TEXT NOT NULL DEFAULT 'UTC',
    xp                BIGINT NOT NULL DEFAULT 0,
    level             INTEGER NOT NULL DEFAULT 1,
    streak_current    INTEGER NOT NULL DEFAULT 0,
    streak_longest    INTEGER NOT NULL DEFAULT 0,
    streak_started_on DATE,
    last_active_day   DATE,
    last_checkin_day  DATE,
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS idx_user_progress_xp ON user_progress (xp DESC);

-- Achievements are data: a metric, a threshold, an XP reward. Progress is the metric's value.
CREATE TABLE IF NOT EXISTS achievement_definitions (
    code        TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    description TEXT NOT NULL,
    metric      TEXT NOT NULL CHECK (metric IN ('messages', 'conversations', 'characters', 'stories', 'images',
                                                'upgrades', 'active_days', 'streak')),
    threshold   INTEGER NOT NULL CHECK (threshold > 0),
    xp_reward   INTEGER NOT NULL DEFAULT 0 CHECK (xp_reward >= 0),
    sort_order  INTEGER NOT NULL DEFAULT 0,
    active      BOOLEAN NOT NULL DEFAULT true
);

INSERT INTO achievement_definitions (code, name, description, metric, threshold, xp_reward, sort_order) VALUES
    ('first_chat', 'First chat', 'Talk with a character for the first time.', 'messages', 1, 20, 10),
    ('chatterbox', 'Chatterbox', 'Exchange 100 messages.', 'messages', 100, 100, 20),
    ('ten_characters', 'Ten characters', 'Talk with 10 different characters.', 'characters', 10, 100, 30),
    ('first_story', 'First story', 'Write your first story.', 'stories', 1, 50, 40),
    ('first_image', 'First image', 'Generate your first image.', 'images', 1, 20, 50),
    ('streak_7', 'One week', 'Be active 7 days in a row.', 'streak', 7, 70, 60),
    ('streak_30', 'One month', 'Be active 30 days in a row.', 'streak', 30, 300, 70),
    ('first_upgrade', 'Supporter', 'Upgrade to a paid plan.', 'upgrades', 1, 100, 80)
ON CONFLICT (code) DO NOTHING;

CREATE TABLE IF NOT EXISTS user_achievements (
    user_id     UUID NOT NULL,
    code        TEXT NOT NULL REFERENCES achievement_definitions(code),
    unlocked_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, code)
);

-- One ticket per grant: `grant_key` (e.g. the streak run and milestone) makes a second grant of
-- the same thing impossible, whatever the concurrency.
CREATE TABLE IF NOT EXISTS flip_tickets (
    id            UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id       UUID NOT NULL,
    reason        TEXT NOT NULL,
    grant_key     TEXT NOT NULL,
    granted_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    flipped_at    TIMESTAMPTZ,
    reward_kind   TEXT,
    reward_amount INTEGER,
    UNIQUE (user_id, grant_key)
);
CREATE INDEX IF NOT EXISTS idx_flip_tickets_user ON flip_tickets (user_id, granted_at DESC, id DESC);
