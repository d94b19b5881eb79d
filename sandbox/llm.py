"""Deterministic "model" behind the Anthropic and OpenAI-compatible sandboxes.

Replies are in character and predictable so tests can assert on them:

* the character is the ``<Name>`` of the first ``You are <Name>`` in the system prompt (capitalised
  words, e.g. ``You are Bruce Wayne, ...`` -> ``Bruce Wayne``); ``Assistant`` when there is none;
* the reply is ``"<Name> here. You said: <last user text, cut to 80 chars>"``, followed by
  ``" I can see the image you sent."`` (or ``the N images``) when the last user turn carries images;
* when the system prompt or the last user turn mentions ``follow-up questions`` and ``JSON``, the
  reply is a JSON array of three short questions instead (``{"questions": [...]}`` when the
  request demands a JSON object);
* when the system prompt asks for ``image recognition`` and ``JSON`` and the last user turn carries an
  image, the reply is a recognition (``recognize()``): an image mostly of one of ``RECOGNISABLE``'s
  colours is "seen" as that entry's title and characters, anything else as an unknown picture. The
  Anthropic reply wraps the JSON in a sentence and a code fence, as models do; the OpenAI-compatible
  ones answer bare JSON when the request demands a JSON object;
* tokens are whitespace-separated words: the output is split into ``word + trailing space``
  pieces, one token each (a stream sends one piece per delta); input tokens are the words of the
  system prompt and every message, plus 85 per image / document.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

IMAGE_TOKENS = 85
QUOTE_CHARS = 80

_WORD = r"[A-Z][\w'\u2019\-]*"
_CHARACTER_RE = re.compile(
    rf"\bYou are ({_WORD}(?:\s+(?:(?:of|the|de|da|van|von|del|al|bin|le|la)\s+)?{_WORD}){{0,4}})"
)
_FOLLOW_UP_RE = re.compile(r"follow[\s-]?up\s+questions?", re.IGNORECASE)
_PIECE_RE = re.compile(r"\S+\s*")


def character_name(system_text: str) -> str:
    m = _CHARACTER_RE.search(system_text or "")
    if not m:
        return "Assistant"
    return m.group(1).strip()


def word_count(text: str) -> int:
    return len(text.split())


def pieces(text: str) -> list[str]:
    """The reply split into tokens: each word with its trailing whitespace."""
    out = _PIECE_RE.findall(text)
    lead = len(text) - len(text.lstrip())
    if lead and out:
        out[0] = text[:lead] + out[0]
    return out or [text]


@dataclass
class Turn:
    role: str
    text: str
    images: int = 0
    image_data: list[bytes] = field(default_factory=list)  # the base64 images' bytes (recognition)


# Image recognition: (colour, what the "model" sees in a picture mostly of that colour). The titles
# and characters but the last are in Content's real seed (content_service/corpus/real.py).
RECOGNISABLE: list[tuple[tuple[int, int, int], dict[str, Any]]] = [
    (
        (0, 200, 70),
        {
            "description": "Green code rains down behind a figure in a long black coat and sunglasses.",
            "tags": ["science fiction", "green", "code", "sunglasses"],
            "titles": ["The Matrix"],
            "characters": ["Neo"],
        },
    ),
    (
        (40, 90, 230),
        {
            "description": "A young man raises a glowing blue lightsaber on a desert planet.",
            "tags": ["space opera", "lightsaber", "desert"],
            "titles": ["Star Wars"],
            "characters": ["Luke Skywalker", "Han Solo"],
        },
    ),
    (
        (230, 0, 230),
        {
            "description": "A purple robot waves from a spaceship window.",
            "tags": ["robot", "cartoon"],
            "titles": ["Zorblax Nine"],
            "characters": ["Captain Zorblax"],
        },
    ),
]
UNKNOWN_PICTURE = {
    "description": "A picture the sandbox does not recognise.",
    "tags": ["unrecognised"],
    "titles": [],
    "characters": [],
}
_RECOGNITION_RE = re.compile(r"image[\s-]+recognition", re.IGNORECASE)


def wants_recognition(system_text: str, turn: Turn) -> bool:
    return bool(turn.image_data) and bool(_RECOGNITION_RE.search(system_text or "")) and "json" in system_text.lower()


def recognize(data: bytes) -> dict[str, Any]:
    """What the sandbox "sees" in an image: the RECOGNISABLE entry nearest its average colour
    (within 60 per channel), else an unknown picture (also when it cannot be decoded)."""
    from PIL import Image, ImageStat  # only the sandbox's recognition needs Pillow

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.draft("RGB", (64, 64))
            mean = ImageStat.Stat(image.convert("RGB")).mean
    except Exception:
        return dict(UNKNOWN_PICTURE)
    best, distance = None, 60.0
    for colour, seen in RECOGNISABLE:
        d = max(abs(a - b) for a, b in zip(mean, colour, strict=True))
        if d < distance:
            best, distance = seen, d
    return dict(best or UNKNOWN_PICTURE)


def image_data(content: Any) -> list[bytes]:
    """The bytes of the base64 images in a message content (either API's shape)."""
    out: list[bytes] = []
    for part in content if isinstance(content, list) else []:
        if not isinstance(part, dict):
            continue
        encoded = None
        if part.get("type") == "image" and (part.get("source") or {}).get("type") == "base64":
            encoded = part["source"].get("data")
        elif part.get("type") == "image_url":
            url = (part.get("image_url") or {}).get("url") or ""
            if url.startswith("data:") and ";base64," in url:
                encoded = url.split(";base64,", 1)[1]
        if isinstance(encoded, str):
            try:
                out.append(base64.b64decode(encoded, validate=True))
            except (binascii.Error, ValueError):
                continue
    return out


def wants_follow_ups(system_text: str, last_user: str) -> bool:
    for text in (system_text, last_user):
        if text and _FOLLOW_UP_RE.search(text) and "json" in text.lower():
            return True
    return False


def follow_up_questions(name: str, last_user: str) -> list[str]:
    # No words of the prompt pasted in: it may be a question, or carry speaker labels ("Fan: ...").
    who = name if name != "Assistant" else "you"
    return [
        f"What would {who} do next?",
        "Can you tell me more about that?",
        "What happened after that?",
    ]


def compose_reply(
    system_text: str,
    turns: list[Turn],
    json_object: bool = False,
    tag: str | None = None,
) -> str:
    name = character_name(system_text)
    last_user = next((t for t in reversed(turns) if t.role == "user"), Turn("user", ""))
    if wants_recognition(system_text, last_user):
        seen = json.dumps(recognize(last_user.image_data[0]))
        return seen if json_object else f"Here is what I see:\n```json\n{seen}\n```"
    if wants_follow_ups(system_text, last_user.text):
        questions = follow_up_questions(name, last_user.text)
        return json.dumps({"questions": questions} if json_object else questions)
    said = " ".join(last_user.text.split())
    if len(said) > QUOTE_CHARS:
        said = said[: QUOTE_CHARS - 3].rstrip() + "..."
    reply = f"{name} here. You said: {said or '(nothing)'}"
    if last_user.images == 1:
        reply += " I can see the image you sent."
    elif last_user.images > 1:
        reply += f" I can see the {last_user.images} images you sent."
    if tag:
        reply += f" [via {tag}]"
    if json_object:
        return json.dumps({"character": name, "reply": reply})
    return reply


def input_tokens(system_text: str, turns: Iterable[Turn], extra_text: str = "") -> int:
    total = word_count(system_text) + word_count(extra_text)
    for t in turns:
        total += word_count(t.text) + IMAGE_TOKENS * t.images
    return max(total, 1)


def truncate_to_tokens(text: str, max_tokens: int | None) -> tuple[list[str], bool]:
    """Split into token pieces; cut to ``max_tokens``. Returns (pieces, was_cut)."""
    ps = pieces(text)
    if max_tokens is not None and len(ps) > max_tokens:
        return ps[:max_tokens], True
    return ps, False


def text_of(content: Any) -> tuple[str, int]:
    """Text and image count of a message content in either API's shape (str or list of parts)."""
    if content is None:
        return "", 0
    if isinstance(content, str):
        return content, 0
    texts: list[str] = []
    images = 0
    if isinstance(content, dict):
        content = [content]
    for part in content:
        if not isinstance(part, dict):
            continue
        ptype = part.get("type")
        if ptype in ("text", "input_text"):
            texts.append(str(part.get("text", "")))
        elif ptype in ("image", "image_url", "input_image", "document", "file"):
            images += 1
        elif ptype == "tool_result":
            t, i = text_of(part.get("content"))
            texts.append(t)
            images += i
        elif ptype == "tool_use":
            texts.append(json.dumps(part.get("input", {})))
    return "\n".join(t for t in texts if t), images
