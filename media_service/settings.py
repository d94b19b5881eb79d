"""The media service's settings: everything ServiceSettings reads, plus its own."""
from shared.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "media"
    port: int = 8004
    media_database_url: str
