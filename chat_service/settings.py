"""The chat service's settings: everything ServiceSettings and LLMSettings (providers) read, plus its own."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from shared import fleet
from shared.auth import TIER_FREE, TIER_PRO
from shared.llm import LLMSettings
from shared.settings import ServiceSettings
from shared.tiers import TIER_CONTEXT_TOKENS


class Settings(LLMSettings, ServiceSettings):
    service_name: str = "chat"
    port: int = 8001
    chat_database_url: str
    # Image attachments travel base64 in the JSON body and audio as uploads: allow more than 1 MiB.
    max_body_bytes: int = 16 * 1024 * 1024

    # --- models: the providers, their tuning and the catalogue are shared.llm.LLMSettings --------
    chat_default_model: str | None = None  # default: the first regular model whose provider is configured
    chat_vision_model: str | None = None  # used when the chosen model cannot see images
    chat_follow_up_model: str | None = None  # default: the conversation's model
    chat_follow_ups: Literal["llm", "template"] = "llm"
    chat_follow_up_timeout_seconds: float = 5.0

    # --- limits -------------------------------------------------------------------------------
    chat_max_message_chars: int = 8000
    chat_max_group_characters: int = 5
    chat_group_max_speakers: int = 3
    # Defaults are the tier table's (shared.tiers.TIER_CONTEXT_TOKENS), one definition for all services.
    chat_context_budget_free: int = TIER_CONTEXT_TOKENS[TIER_FREE]
    chat_context_budget_paid: int = TIER_CONTEXT_TOKENS[TIER_PRO]
    chat_max_attachments: int = 4
    chat_max_image_bytes: int = 5 * 1024 * 1024
    chat_stream_heartbeat_seconds: float = 10.0

    # --- character context ----------------------------------------------------------------------
    tmdb_api_key: str | None = None
    tmdb_base_url: str = "https://api.themoviedb.org/3"
    wikipedia_base_url: str = "https://en.wikipedia.org/api/rest_v1"
    context_timeout_seconds: float = 3.0
    context_cache_seconds: int = 24 * 3600
    tmdb_cache_seconds: int = 7 * 24 * 3600
    context_failure_cache_seconds: int = 60
    context_local_cache_seconds: int = 300  # in-process copy of hot characters (0: off)
    # Community's custom characters (/talk_with and /group_chat with character_id): read over HTTP
    # with the caller's token, cached this long (custom_characters.py).
    community_service_url: str = f"http://127.0.0.1:{fleet.get('community').dev_port}"
    community_timeout_seconds: float = 5.0
    custom_character_cache_seconds: int = 60

    # --- voice ----------------------------------------------------------------------------------
    voice_max_bytes: int = 10 * 1024 * 1024
    voice_transcribe_model: str = "whisper-1"
    voice_tts_model: str = "tts-1"
    voice_default: str = "alloy"
    voice_max_text_chars: int = 4096

    # --- export / share -------------------------------------------------------------------------
    chat_pdf_font_path: str | None = Field(default=None, description="a TTF font for PDF export (Unicode)")
    public_base_url: str = "https://chat.api.scenextras.com"
