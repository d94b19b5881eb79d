"""The auth service's settings: everything ServiceSettings reads, plus its own."""
from shared.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "auth"
    port: int = 8005
