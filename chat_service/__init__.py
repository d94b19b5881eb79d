"""SceneXtras chat service: character conversations."""
