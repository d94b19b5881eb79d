"""SceneXtras payment service: subscriptions, webhooks, quotas."""
