"""The chat service's settings: everything ServiceSettings reads, plus its own."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from shared.auth import TIER_FREE, TIER_PRO
from shared.settings import ServiceSettings
from shared.tiers import TIER_CONTEXT_TOKENS


class Settings(ServiceSettings):
    service_name: str = "chat"
    port: int = 8001
    chat_database_url: str
    # Image attachments travel base64 in the JSON body and audio as uploads: allow more than 1 MiB.
    max_body_bytes: int = 16 * 1024 * 1024

    # --- LLM providers: a provider without a key is not in the router -----------------------
    anthropic_api_key: str | None = None
    openai_api_key: str | None = None
    groq_api_key: str | None = None
    deepseek_api_key: str | None = None
    gemini_api_key: str | None = None
    anthropic_base_url: str | None = None  # None: the SDK's default (the real API)
    openai_base_url: str | None = None
    groq_base_url: str = "https://api.groq.com/openai/v1"
    deepseek_base_url: str = "https://api.deepseek.com/v1"
    gemini_base_url: str = "https://generativelanguage.googleapis.com/v1beta/openai/"
    # Fallback order between providers for the same class of model.
    llm_provider_order: list[str] = ["anthropic", "openai", "gemini", "groq", "deepseek"]
    llm_timeout_seconds: float = 60.0  # whole request (non-stream) / gap between chunks (stream)
    llm_connect_timeout_seconds: float = 5.0
    llm_max_retries: int = 0  # the router falls back to the next provider instead of retrying
    llm_max_concurrency: int = 64  # per provider; Max tier jumps the queue beyond it
    llm_queue_timeout_seconds: float = 30.0
    llm_max_reply_tokens: int = 1024
    # Catalogue override: a JSON list of {"id", "provider", "provider_model"?, "min_tier", "quota_type", "vision"}.
    chat_model_catalogue: list[dict[str, Any]] | None = None
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

    # --- voice ----------------------------------------------------------------------------------
    voice_max_bytes: int = 10 * 1024 * 1024
    voice_transcribe_model: str = "whisper-1"
    voice_tts_model: str = "tts-1"
    voice_default: str = "alloy"
    voice_max_text_chars: int = 4096

    # --- export / share -------------------------------------------------------------------------
    chat_pdf_font_path: str | None = Field(default=None, description="a TTF font for PDF export (Unicode)")
    public_base_url: str = "https://chat.api.scenextras.com"
