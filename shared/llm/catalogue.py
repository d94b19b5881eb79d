"""The model catalogue: which models exist, who serves them, which tier and quota each needs and
whether it sees images."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.auth import TIER_FREE, TIER_PRO

ANTHROPIC = "anthropic"
OPENAI_COMPATIBLE = ("openai", "groq", "deepseek", "gemini")
PROVIDERS = (ANTHROPIC, *OPENAI_COMPATIBLE)


@dataclass(frozen=True)
class ModelSpec:
    id: str  # what clients send
    provider: str
    provider_model: str  # what the provider is asked for
    min_tier: int = TIER_FREE
    quota_type: str = "regular"  # regular | premium
    vision: bool = False
    label: str = ""

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "provider": self.provider,
            "label": self.label or self.id,
            "min_tier": self.min_tier,
            "quota_type": self.quota_type,
            "vision": self.vision,
        }


DEFAULT_CATALOGUE: tuple[ModelSpec, ...] = (
    ModelSpec(
        "claude-haiku-4-5", ANTHROPIC, "claude-haiku-4-5-20251001", TIER_FREE, "regular", True, "Claude Haiku 4.5"
    ),
    ModelSpec("claude-sonnet-4-6", ANTHROPIC, "claude-sonnet-4-6", TIER_PRO, "premium", True, "Claude Sonnet 4.6"),
    ModelSpec("claude-opus-4-7", ANTHROPIC, "claude-opus-4-7", TIER_PRO, "premium", True, "Claude Opus 4.7"),
    ModelSpec("gpt-4o-mini", "openai", "gpt-4o-mini", TIER_FREE, "regular", True, "GPT-4o mini"),
    ModelSpec("gpt-4o", "openai", "gpt-4o", TIER_PRO, "premium", True, "GPT-4o"),
    ModelSpec("gemini-2.5-flash", "gemini", "gemini-2.5-flash", TIER_FREE, "regular", True, "Gemini 2.5 Flash"),
    ModelSpec("gemini-2.5-pro", "gemini", "gemini-2.5-pro", TIER_PRO, "premium", True, "Gemini 2.5 Pro"),
    ModelSpec("llama-3.3-70b", "groq", "llama-3.3-70b-versatile", TIER_FREE, "regular", False, "Llama 3.3 70B (Groq)"),
    ModelSpec("deepseek-chat", "deepseek", "deepseek-chat", TIER_FREE, "regular", False, "DeepSeek Chat"),
)


def catalogue_from_config(items: list[dict[str, Any]] | None) -> tuple[ModelSpec, ...]:
    if not items:
        return DEFAULT_CATALOGUE
    specs = []
    for item in items:
        provider = item["provider"]
        if provider not in PROVIDERS:
            raise ValueError(f"LLM_MODEL_CATALOGUE: unknown provider {provider!r} (one of {', '.join(PROVIDERS)})")
        specs.append(
            ModelSpec(
                id=item["id"],
                provider=provider,
                provider_model=item.get("provider_model") or item["id"],
                min_tier=int(item.get("min_tier", TIER_FREE)),
                quota_type=item.get("quota_type", "regular"),
                vision=bool(item.get("vision", False)),
                label=item.get("label", ""),
            )
        )
    return tuple(specs)
