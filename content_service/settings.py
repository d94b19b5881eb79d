"""The content service's settings: everything ServiceSettings reads, plus its own."""
from shared.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "content"
    port: int = 8003
