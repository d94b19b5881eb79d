"""Follow-up questions a newcomer sees in the keyless fleet read as questions: no speaker label or
pasted question from the prompt ("Can you tell me more about Fan: Who are you?")."""

from __future__ import annotations

import json

from chat_service.follow_ups import template as template_follow_ups
from sandbox.llm import Turn, compose_reply

FOLLOW_UP_SYSTEM = (
    "You suggest follow-up questions for a fan chatting with Batman from The Dark Knight. Write 3 short "
    "follow-up questions the fan could ask next, each under 15 words, in the fan's voice. "
    "Answer with a JSON array of strings only."
)


def test_sandbox_follow_ups_for_chats_prompt():
    prompt = "Fan: Who are you?\nBatman: I am the night.\n\nThe 3 follow-up questions, as a JSON array:"
    questions = json.loads(compose_reply(FOLLOW_UP_SYSTEM, [Turn("user", prompt)]))
    assert len(questions) == 3 and all(q.endswith("?") for q in questions)
    assert not any("Fan:" in q or "Who are you" in q for q in questions), questions


def test_chat_template_follow_ups_do_not_paste_the_message():
    questions = template_follow_ups("Bruce Wayne", "The Dark Knight", "Who are you?")
    assert len(questions) == 3 and all(q.endswith("?") for q in questions)
    assert not any("Who are you" in q for q in questions), questions
    assert all("Bruce" in q for q in questions)
