"""Turns as the router takes them, and their translation into each provider family's messages."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ImageInput:
    url: str | None = None
    media_type: str | None = None
    data_b64: str | None = None


@dataclass
class Turn:
    role: str  # user | assistant
    text: str
    images: list[ImageInput] = field(default_factory=list)


def merge_turns(turns: list[Turn]) -> list[Turn]:
    """Consecutive turns of one role become one (providers want alternating roles), and the
    conversation starts with a user turn."""
    merged: list[Turn] = []
    for t in turns:
        if merged and merged[-1].role == t.role:
            merged[-1] = Turn(t.role, merged[-1].text + "\n\n" + t.text, merged[-1].images + t.images)
        else:
            merged.append(Turn(t.role, t.text, list(t.images)))
    if merged and merged[0].role != "user":
        merged.insert(0, Turn("user", "(The conversation continues.)"))
    return merged


def anthropic_messages(turns: list[Turn]) -> list[dict[str, Any]]:
    out = []
    for t in merge_turns(turns):
        if not t.images:
            out.append({"role": t.role, "content": t.text})
            continue
        blocks: list[dict[str, Any]] = []
        for img in t.images:
            if img.data_b64:
                blocks.append(
                    {"type": "image", "source": {"type": "base64", "media_type": img.media_type, "data": img.data_b64}}
                )
            else:
                blocks.append({"type": "image", "source": {"type": "url", "url": img.url}})
        blocks.append({"type": "text", "text": t.text})
        out.append({"role": t.role, "content": blocks})
    return out


def openai_messages(system: str, turns: list[Turn]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"role": "system", "content": system}]
    for t in merge_turns(turns):
        if not t.images:
            out.append({"role": t.role, "content": t.text})
            continue
        parts: list[dict[str, Any]] = [{"type": "text", "text": t.text}]
        for img in t.images:
            url = f"data:{img.media_type};base64,{img.data_b64}" if img.data_b64 else img.url
            parts.append({"type": "image_url", "image_url": {"url": url}})
        out.append({"role": t.role, "content": parts})
    return out
