"""The community service's settings: everything ServiceSettings reads, plus its own."""
from shared import fleet
from shared.settings import ServiceSettings


def _local(name: str) -> str:
    return f"http://127.0.0.1:{fleet.get(name).dev_port}"


class Settings(ServiceSettings):
    service_name: str = "community"
    port: int = fleet.get("community").dev_port
    community_database_url: str
    # Other services, reached over HTTP with the caller's token (never their databases).
    chat_service_url: str = _local("chat")
    content_service_url: str = _local("content")
    upstream_timeout_seconds: float = 10.0
    # Where share links point (the web app's reader of GET /shared/stories/{token}).
    public_base_url: str = "https://scenextras.com"
    # Messages of an imported conversation kept as source material (newest kept when longer).
    import_max_messages: int = 200
    # OpenAI moderation (OpenAI's moderations endpoint through the official SDK).
    openai_api_key: str | None = None
    openai_base_url: str | None = None
    moderation_model: str = "omni-moderation-latest"
    moderation_timeout_seconds: float = 10.0
