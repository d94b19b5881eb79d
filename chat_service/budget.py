"""Fitting a conversation into the tier's context budget (tokens are counted by
shared.llm.tokens; each message's count is stored when it is saved)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Item:
    """One history message as the budget sees it."""

    id: str
    tokens: int
    pinned: bool = False


@dataclass
class Fitted:
    keep: list[str]  # ids kept, in the order given
    dropped: list[str]
    used_tokens: int  # system + kept history + new message
    budget: int


def fit(system_tokens: int, history: list[Item], new_tokens: int, budget: int) -> Fitted:
    """Keep the system prompt, the new message and pinned messages; then the newest history
    messages while they fit; drop the oldest. `history` is in chronological order.

    If the fixed part alone (system + pinned + new message) exceeds the budget, pinned messages
    are dropped oldest first: the system prompt and the new message always stay.
    """
    used = system_tokens + new_tokens
    pinned = [h for h in history if h.pinned]
    pinned_ids: set[str] = set()
    for h in reversed(pinned):  # newest pinned first
        if used + h.tokens <= budget:
            used += h.tokens
            pinned_ids.add(h.id)
    keep_ids = set(pinned_ids)
    for h in reversed(history):  # newest first
        if h.pinned:
            continue
        if used + h.tokens > budget:
            break  # contiguous: never keep an older message after dropping a newer one
        used += h.tokens
        keep_ids.add(h.id)
    keep = [h.id for h in history if h.id in keep_ids]
    dropped = [h.id for h in history if h.id not in keep_ids]
    return Fitted(keep, dropped, used, budget)
