"""The payment service's settings: everything ServiceSettings reads, plus its own."""
from shared.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "payment"
    port: int = 8002
