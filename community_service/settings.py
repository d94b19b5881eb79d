"""The community service's settings: everything ServiceSettings reads, plus its own."""

from pydantic import Field

from shared import fleet
from shared.email import EmailSettings
from shared.llm import LLMSettings
from shared.settings import ServiceSettings


def _local(name: str) -> str:
    return f"http://127.0.0.1:{fleet.get(name).dev_port}"


class Settings(LLMSettings, EmailSettings, ServiceSettings):
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

    # Notifications (community_service/notifications). Email: shared.email.EmailSettings
    # (EMAIL_BACKEND, SENDGRID_*); push: Expo's push API (the sandbox's /expo/--/api/v2 in tests).
    frontend_url: str = "https://scenextras.com"  # the preferences link in notification emails
    expo_push_base_url: str = "https://exp.host/--/api/v2"
    expo_access_token: str | None = None  # Expo's "enhanced security for push notifications"
    expo_push_timeout_seconds: float = 10.0
    notification_batch_size: int = 500
    # The longest an event waits for others to batch with: none (what arrives while a batch is being
    # applied forms the next one, so batches grow with the load by themselves).
    notification_batch_wait_ms: float = 0.0
    notification_delivery_poll_seconds: float = 1.0
    notification_delivery_batch: int = 100  # Expo takes up to 100 messages a request
    notification_retry_base_seconds: float = 5.0  # back-off doubles from here...
    notification_retry_max_seconds: float = 300.0  # ...up to this, and retries never stop
    notification_lease_seconds: float = 60.0  # a claimed delivery is due again after this
    notification_receipt_delay_seconds: float = 900.0  # Expo: receipts are ready within ~15 minutes
    notification_stream_heartbeat_seconds: float = 15.0
    notification_stream_max_seconds: float = 300.0  # then the client reconnects with Last-Event-ID
    # How long the first page of each public story feed is served from memory (feed_cache.py).
    feed_cache_seconds: float = Field(1.0, ge=0, le=60)
