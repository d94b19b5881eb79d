"""SceneXtras content service: search and resources."""
