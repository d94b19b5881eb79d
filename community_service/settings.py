"""The community service's settings: everything ServiceSettings reads, plus its own."""
from shared.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "community"
    port: int = 8006
    community_database_url: str
