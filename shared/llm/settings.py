"""The LLM settings every service that calls a model reads (chat now, community and media next):
one set of environment variables for the providers, their tuning and the moderation model.

    class Settings(LLMSettings, ServiceSettings): ...
"""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.llm.catalogue import PROVIDERS


class LLMSettings(BaseSettings):
    """A mixin: a provider without an API key is not in the router."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)

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
    # CHAT_MODEL_CATALOGUE is the name it had when only chat read it; both are read.
    llm_model_catalogue: list[dict[str, Any]] | None = Field(
        default=None, validation_alias=AliasChoices("llm_model_catalogue", "chat_model_catalogue")
    )
    # OpenAI's moderation endpoint (needs OPENAI_API_KEY; without it moderate() fails closed).
    llm_moderation_model: str = "omni-moderation-latest"
    llm_moderation_timeout_seconds: float = 10.0

    def provider_base_urls(self) -> dict[str, str | None]:
        return {p: getattr(self, f"{p}_base_url") for p in PROVIDERS}

    def provider_api_keys(self) -> dict[str, str | None]:
        return {p: getattr(self, f"{p}_api_key") for p in PROVIDERS}
