"""Step 4 of the wizard: the story written by a model, streamed as server-sent events in chat's
frames (`event: token` {"text"} per delta, one `event: done` {"story", "usage"}, or one
`event: error` {"code", "message"}).

The `story` quota is reserved before the response starts (402 INSUFFICIENT_QUOTA is a plain JSON
answer), through shared.quota's `reserved()`, and finished when the stream ends: settled when the
text was saved as a new version, released on any failure or when the client goes away.
The prompt is built from the draft's steps and the imported conversation, newest messages kept
first, within a token budget."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import orjson

from community_service import errors
from community_service.repositories import stories as story_repo
from community_service.service_stories import _later_step, _own_story_locked, story_out
from shared.auth import CurrentUser
from shared.errors import ErrorCode
from shared.llm import LLMRouter, LLMUnavailable, StreamResult, Turn
from shared.llm.tokens import count_tokens

log = logging.getLogger("community_service.generation")

LENGTHS = {"short": (300, 600), "medium": (800, 1400), "long": (1800, 3000)}  # words, reply tokens
SOURCE_TOKEN_BUDGET = 3000


def frame(event: str, data) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def _error_frame(code: ErrorCode, message: str | None = None) -> bytes:
    return frame("error", {"code": code.code, "message": message or code.message})


def build_prompt(row, length: str, instructions: str | None, budget: int = SOURCE_TOKEN_BUDGET) -> tuple[str, str]:
    """(system, user message). The imported conversation is cut from the oldest side to `budget` tokens."""
    words, _ = LENGTHS[length]
    universe = row["universe"] or {}
    scenario = row["scenario"] or {}
    lines = [
        "You are a fan-fiction author on SceneXtras. Write an original story in prose, "
        f"about {words} words, with a title on the first line prefixed by 'Title: '.",
    ]
    if universe:
        lines.append(f"Universe: {universe.get('name', '')}. {universe.get('description', '')}".strip())
    for c in row["characters"] or []:
        desc = "; ".join(x for x in (c.get("description"), c.get("personality")) if x)
        lines.append(
            f"Character: {c['name']}" + (f" ({c['series']})" if c.get("series") else "") + (f": {desc}" if desc else "")
        )
    if scenario:
        lines.append(f"Setting: {scenario.get('setting', '')}. Tone: {scenario.get('tone', '')}.")
        if scenario.get("themes"):
            lines.append("Themes: " + ", ".join(scenario["themes"]))
        if scenario.get("opening_line"):
            lines.append(f"Open with: {scenario['opening_line']}")
    source = row["source"]
    if source and source.get("messages"):
        kept, used = [], 0
        for m in reversed(source["messages"]):
            line = f"{m.get('sender') or m.get('role')}: {m.get('content', '')}"
            cost = count_tokens(line)
            if used + cost > budget:
                break
            kept.append(line)
            used += cost
        if kept:
            lines.append("Source material, a chat conversation to draw on:\n" + "\n".join(reversed(kept)))
    request = "Write the story now."
    if instructions:
        request += f" The author's instructions: {instructions}"
    return "\n".join(lines), request


def split_title(text: str) -> tuple[str | None, str]:
    first, _, rest = text.strip().partition("\n")
    if first.lower().startswith("title:"):
        return first[6:].strip()[:200] or None, rest.strip()
    return None, text.strip()


async def prepare(pool, llm: LLMRouter, quota, user: CurrentUser, story_id: str):
    """Checks before the stream starts (plain JSON errors): the caller's story with characters, a
    model, and the `story` quota entered (the returned context manager must be exited)."""
    async with pool.acquire() as conn:
        row = await story_repo.get(conn, _parse(story_id))
    if row is None or row["status"] == "removed" or row["author_id"] != user.user_id:
        raise errors.STORY_NOT_FOUND()
    if not row["characters"]:
        raise errors.STORY_INCOMPLETE("Choose the story's characters first.")
    spec = llm.default_model()
    if spec is None:
        raise errors.LLM_UNAVAILABLE()
    reservation_cm = quota.reserved(user.user_id, "story", 1)
    await reservation_cm.__aenter__()  # InsufficientQuota (402) propagates: nothing reserved
    return row, spec, reservation_cm


def _parse(story_id: str):
    from community_service.service import parse_id

    return parse_id(story_id, errors.STORY_NOT_FOUND)


async def run(
    pool, llm: LLMRouter, user: CurrentUser, row, spec, reservation_cm, length: str, instructions: str | None
) -> AsyncIterator[bytes]:
    system, request = build_prompt(row, length, instructions)
    _, max_tokens = LENGTHS[length]
    result = StreamResult()
    parts: list[str] = []
    failure: BaseException | None = None
    try:
        try:
            async for delta in llm.stream(
                spec, system, [Turn("user", request)], result, tier=user.tier, max_tokens=max_tokens
            ):
                parts.append(delta)
                yield frame("token", {"text": delta})
        except LLMUnavailable as exc:
            raise _Failed(errors.LLM_UNAVAILABLE) from exc
        title, body = split_title("".join(parts))
        if not body:
            raise _Failed(errors.LLM_UNAVAILABLE, "The model returned no text.")
        async with pool.acquire() as conn, conn.transaction():
            current = await _own_story_locked(conn, user, str(row["id"]), None)
            values = {"body": body, "step": _later_step(current["step"], "edit")}
            if title and not current["title"].strip():
                values["title"] = title
            saved = await story_repo.new_version(conn, current["id"], values, "generation", user.user_id)
        yield frame(
            "done",
            {
                "story": story_out(saved, for_author=True),
                "usage": {
                    "model": result.spec.id if result.spec else spec.id,
                    "input_tokens": result.input_tokens,
                    "output_tokens": result.output_tokens,
                },
            },
        )
    except _Failed as exc:
        failure = exc
        log.warning("story generation failed", extra={"story_id": str(row["id"]), "code": exc.code.code})
        yield _error_frame(exc.code, exc.message)
    except BaseException as exc:  # the client went away (cancellation), or a bug: give the quota back
        failure = exc
        raise
    finally:
        if failure is None:
            await reservation_cm.__aexit__(None, None, None)  # settle
        else:
            await reservation_cm.__aexit__(type(failure), failure, failure.__traceback__)  # release


class _Failed(Exception):
    def __init__(self, code: ErrorCode, message: str | None = None):
        super().__init__(message or code.message)
        self.code = code
        self.message = message
