"""The analytics service's settings: everything ServiceSettings reads, plus its own."""

from shared import fleet
from shared.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "analytics"
    port: int = fleet.get("analytics").dev_port
    analytics_database_url: str
    # The consumer bound to every event applies up to this many per transaction, waiting at most
    # ANALYTICS_BATCH_WAIT_MS for a batch to fill (the latency added when traffic is light).
    analytics_batch_size: int = 500
    analytics_batch_wait_ms: float = 20.0
    # Forward every event to PostHog (official SDK) when a project key is set.
    posthog_api_key: str | None = None
    posthog_host: str = "https://us.i.posthog.com"
