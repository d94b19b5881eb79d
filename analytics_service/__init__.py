"""SceneXtras analytics service: statistics and streaks."""
