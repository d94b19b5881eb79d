"""SceneXtras community service: stories, rooms, scenarios."""
