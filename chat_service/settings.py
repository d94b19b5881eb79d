"""The chat service's settings: everything ServiceSettings reads, plus its own."""
from shared.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "chat"
    port: int = 8001
    chat_database_url: str
