-- Leaderboards. "All time" boards read the tables that hold the values (user_analytics.messages,
-- user_progress.xp and .streak_longest); per-period boards (UTC ISO week, UTC month) keep each
-- user's score in leaderboard_scores, board = '<metric>:<week|month>:<first day>'. Top N is an
-- index range scan (value DESC), the caller's rank comes from metric_histogram keyed by the board
-- (and 'streak' for the longest streak): no sort of the users per request.
-- 'messages:*' boards are rollups (a replay rebuilds them); 'xp:*' boards follow progression.
CREATE TABLE IF NOT EXISTS leaderboard_scores (
    board   TEXT NOT NULL,
    user_id UUID NOT NULL,
    value   BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (board, user_id)
);
CREATE INDEX IF NOT EXISTS idx_leaderboard_scores_top ON leaderboard_scores (board, value DESC, user_id);
CREATE INDEX IF NOT EXISTS idx_leaderboard_scores_user ON leaderboard_scores (user_id);

CREATE INDEX IF NOT EXISTS idx_user_analytics_messages ON user_analytics (messages DESC, user_id);
CREATE INDEX IF NOT EXISTS idx_user_progress_xp_top ON user_progress (xp DESC, user_id);
CREATE INDEX IF NOT EXISTS idx_user_progress_streak_top ON user_progress (streak_longest DESC, user_id);

INSERT INTO metric_histogram (metric, value, users)
SELECT 'streak', streak_longest, count(*) FROM user_progress GROUP BY streak_longest
ON CONFLICT DO NOTHING;
INSERT INTO metric_histogram_blocks (metric, block, users)
SELECT metric, value >> 10, sum(users) FROM metric_histogram WHERE metric = 'streak' GROUP BY 1, 2
ON CONFLICT DO NOTHING;
