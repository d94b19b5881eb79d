"""The analytics service's settings: everything ServiceSettings reads, plus its own."""

from pydantic import field_validator

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
    # Every event is forwarded to PostHog (official SDK) when POSTHOG_API_KEY is set (ServiceSettings'
    # posthog_api_key / posthog_host, shared/engagement.py).
    # The daily task (engagement tiers, stored DAU/WAU/MAU, pruning; analytics_service/daily.py):
    # each worker checks this often whether today's run is due; 0 turns the check off.
    analytics_daily_check_seconds: float = 900.0
    # Raw-event partitions (one per UTC month) older than this many complete months before the
    # current one are detached and dropped by the daily task; 0 keeps them all. At least 2, so a
    # month is dropped only after its rollups are final (beyond any redelivery: daily.py).
    analytics_raw_retention_months: int = 13

    @field_validator("analytics_raw_retention_months")
    @classmethod
    def _retention(cls, value: int) -> int:
        if value != 0 and value < 2:
            raise ValueError("ANALYTICS_RAW_RETENTION_MONTHS must be 0 (keep all) or at least 2")
        return value
