"""SceneXtras media service: images and media files."""
