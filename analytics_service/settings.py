"""The analytics service's settings: everything ServiceSettings reads, plus its own."""
from shared.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "analytics"
    port: int = 8007
    analytics_database_url: str
