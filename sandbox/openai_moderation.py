"""OpenAI's moderation endpoint as the sandbox answers it: text carrying `sandbox-flag` (or
`sandbox-flag:<category>`) is flagged; the answer has the real shape (categories, scores, the
input types each category applied to)."""

from __future__ import annotations

import re
from typing import Any

MODERATION_CATEGORIES = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/instructions",
    "self-harm/intent",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)
# Categories the real endpoint also scores on images (category_applied_input_types).
MODERATION_IMAGE_CATEGORIES = {
    "self-harm",
    "self-harm/instructions",
    "self-harm/intent",
    "sexual",
    "violence",
    "violence/graphic",
}
MODERATION_MARKER = re.compile(r"sandbox-flag(?::([a-z/-]+))?", re.IGNORECASE)


def moderation_inputs(value: Any) -> list[tuple[str, bool]] | None:
    """(text, has an image) per input, or None when `input` is not a shape the API accepts."""
    if isinstance(value, str):
        return [(value, False)]
    if not isinstance(value, list) or not value:
        return None
    if all(isinstance(v, str) for v in value):
        return [(v, False) for v in value]
    if all(isinstance(v, dict) and v.get("type") in ("text", "image_url") for v in value):
        # Multimodal parts are one input together.
        text = " ".join(str(v.get("text") or "") for v in value if v["type"] == "text")
        return [(text, any(v["type"] == "image_url" for v in value))]
    return None


def moderation_result(text: str, image: bool) -> dict[str, Any]:
    """Raises ValueError for a marker naming an unknown category."""
    flagged: set[str] = set()
    for m in MODERATION_MARKER.finditer(text):
        category = (m.group(1) or "violence").lower()
        if category not in MODERATION_CATEGORIES:
            raise ValueError(category)
        flagged.add(category)
    kinds = lambda c: ["text", "image"] if image and c in MODERATION_IMAGE_CATEGORIES else ["text"]  # noqa: E731
    return {
        "flagged": bool(flagged),
        "categories": {c: c in flagged for c in MODERATION_CATEGORIES},
        "category_scores": {c: 0.98 if c in flagged else 0.0001 for c in MODERATION_CATEGORIES},
        "category_applied_input_types": {c: kinds(c) for c in MODERATION_CATEGORIES},
    }
