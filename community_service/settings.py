"""The community service's settings: everything ServiceSettings reads, plus its own."""

from pydantic import Field

from shared import fleet
from shared.llm import LLMSettings
from shared.settings import ServiceSettings


def _local(name: str) -> str:
    return f"http://127.0.0.1:{fleet.get(name).dev_port}"


class Settings(LLMSettings, ServiceSettings):
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
    # The LLM providers and OpenAI's moderation (OPENAI_API_KEY, LLM_MODERATION_MODEL, ...) are
    # LLMSettings' (shared/llm).
    # Fandom rooms: Auth records referral joins (POST /referrals/apply with the caller's token).
    auth_service_url: str = _local("auth")
    # How often an open room's document is saved back to its story as a version (when it changed).
    room_doc_save_seconds: float = Field(30.0, gt=0)
