"""SceneXtras community service: stories, fandom rooms, scenarios, votes, notifications."""
