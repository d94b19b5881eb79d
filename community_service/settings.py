"""The community service's settings: everything ServiceSettings reads, plus its own."""
from shared import fleet
from shared.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "community"
    port: int = fleet.get("community").dev_port
    community_database_url: str
