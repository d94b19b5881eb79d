"""The media service's settings: everything ServiceSettings reads, plus its own."""
from shared import fleet
from shared.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "media"
    port: int = fleet.get("media").dev_port
    media_database_url: str
