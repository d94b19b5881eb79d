"""SceneXtras media service: image generation and recognition, blob storage."""
