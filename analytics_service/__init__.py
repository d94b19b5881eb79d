"""SceneXtras analytics service: usage statistics, streaks, XP, platform metrics."""
