-- Ranks without sorting users: how many users have each value of a metric (`xp`, `messages`),
-- kept up to date as values change, plus the same counts per block of 1,024 values. A rank is
-- the users in the blocks above the value's block plus those above it inside its block: two
-- short index range scans, whatever the number of users.
-- `messages` is a rollup of user_analytics (rebuilt by a replay); `xp` follows user_progress.
CREATE TABLE IF NOT EXISTS metric_histogram (
    metric TEXT NOT NULL,
    value  BIGINT NOT NULL,
    users  BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (metric, value)
);

CREATE TABLE IF NOT EXISTS metric_histogram_blocks (
    metric TEXT NOT NULL,
    block  BIGINT NOT NULL,  -- value >> 10
    users  BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (metric, block)
);

-- What the histograms start from when this migration meets existing rows.
INSERT INTO metric_histogram (metric, value, users)
SELECT 'messages', messages, count(*) FROM user_analytics GROUP BY messages
UNION ALL
SELECT 'xp', xp, count(*) FROM user_progress GROUP BY xp
ON CONFLICT DO NOTHING;
INSERT INTO metric_histogram_blocks (metric, block, users)
SELECT metric, value >> 10, sum(users) FROM metric_histogram GROUP BY 1, 2
ON CONFLICT DO NOTHING;
