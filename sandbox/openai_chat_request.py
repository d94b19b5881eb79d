"""A chat-completions request body checked the way OpenAI checks it: the same messages, the same
parameters named in the same errors (raised as BadRequest, rendered by the provider)."""

from __future__ import annotations

from typing import Any

from . import llm
from .core import dumps


class BadRequest(Exception):
    def __init__(self, message: str, param: str | None = None, code: str | None = None, status: int = 400):
        super().__init__(message)
        self.message, self.param, self.code, self.status = message, param, code, status


def parse_chat(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequest("We could not parse the JSON body of your request.")
    if not body.get("model"):
        raise BadRequest("you must provide a model parameter")
    messages = body.get("messages")
    if messages is None:
        raise BadRequest("Missing required parameter: 'messages'.", "messages", "missing_required_parameter")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("[] is too short - 'messages'", "messages", "invalid_value")
    system_parts: list[str] = []
    turns: list[llm.Turn] = []
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise BadRequest(f"Invalid type for 'messages[{i}]': expected an object.", f"messages[{i}]", "invalid_type")
        role = msg.get("role")
        if role not in ("system", "developer", "user", "assistant", "tool", "function"):
            raise BadRequest(
                f"Invalid value: '{role}'. Supported values are: 'system', 'assistant', 'user', 'function', "
                "'tool', and 'developer'.",
                f"messages[{i}].role",
                "invalid_value",
            )
        content = msg.get("content")
        if isinstance(content, list):
            for j, part in enumerate(content):
                if isinstance(part, dict) and part.get("type") == "image_url":
                    url = (part.get("image_url") or {}).get("url", "")
                    if not (
                        url.startswith(("http://", "https://")) or (url.startswith("data:image/") and ";base64," in url)
                    ):
                        raise BadRequest(
                            "Invalid image URL. The URL must be a valid HTTP or HTTPS URL, or a data URL with "
                            "base64 encoding.",
                            f"messages[{i}].content[{j}].image_url.url",
                            "invalid_image_url",
                        )
        text, images = llm.text_of(content)
        if role in ("system", "developer"):
            system_parts.append(text)
        else:
            turns.append(
                llm.Turn(
                    "assistant" if role == "assistant" else "user" if role == "user" else role,
                    text,
                    images,
                    llm.image_data(content),
                )
            )
    system = "\n".join(system_parts)
    extra = dumps(body.get("tools")).decode() if body.get("tools") else ""
    return {"system": system, "turns": turns, "prompt_tokens": llm.input_tokens(system, turns, extra)}
