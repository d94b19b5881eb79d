"""The analytics service's settings: everything ServiceSettings reads, plus its own."""
from shared import fleet
from shared.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "analytics"
    port: int = fleet.get("analytics").dev_port
    analytics_database_url: str
