"""History fitted to the tier's context budget with a real tokenizer (cl100k_base)."""

import json
import re
import uuid

import pytest

from chat_service import budget
from shared.llm.tokens import count_tokens, encoding


def test_the_tokenizer_is_cl100k():
    # Known cl100k_base encodings (tiktoken's own test vectors).
    assert encoding().encode("hello world") == [15339, 1917]
    assert count_tokens("hello world") == 2
    assert count_tokens("") == 0


def test_fit_keeps_system_pinned_and_newest_and_drops_oldest():
    history = [budget.Item(f"m{i}", 100, pinned=(i == 0)) for i in range(10)]
    fitted = budget.fit(system_tokens=200, history=history, new_tokens=50, budget=750)
    # 200 + 50 + pinned 100 = 350; 400 left: the 4 newest.
    assert fitted.keep == ["m0", "m6", "m7", "m8", "m9"]
    assert fitted.dropped == ["m1", "m2", "m3", "m4", "m5"]
    assert fitted.used_tokens == 750


def test_fit_never_skips_a_newer_message_to_keep_an_older_one():
    history = [budget.Item("old-small", 10), budget.Item("mid-big", 500), budget.Item("new", 10)]
    fitted = budget.fit(system_tokens=0, history=history, new_tokens=0, budget=100)
    assert fitted.keep == ["new"]


def test_fit_when_pinned_messages_alone_overflow():
    history = [budget.Item("p1", 600, pinned=True), budget.Item("p2", 600, pinned=True), budget.Item("n", 10)]
    fitted = budget.fit(system_tokens=100, history=history, new_tokens=100, budget=1000)
    assert fitted.keep == ["p2", "n"]  # p1 does not fit beside p2; system prompt and new message always stay
    assert fitted.used_tokens == 810


FILLER = "lorem " * 995


async def seed_history(chat_db, user_id: str, conversation_id: str, n: int, pin: set[int]) -> dict[str, int]:
    """n messages of ~1000 tokens each, alternating user / character; returns marker -> tokens."""
    tokens = {}
    async with chat_db.acquire() as conn:
        for i in range(n):
            content = f"[m{i}] {FILLER}"
            count = count_tokens(content)
            tokens[f"m{i}"] = count
            role = "user" if i % 2 == 0 else "assistant"
            await conn.execute(
                "INSERT INTO messages (id, conversation_id, user_id, sender, role, content, token_count, pinned)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                str(uuid.uuid4()),
                conversation_id,
                user_id,
                "user" if role == "user" else "Batman",
                role,
                content,
                count,
                i in pin,
            )
        # The counters the service keeps with every turn (the history window reads message_count).
        await conn.execute(
            "UPDATE conversations SET message_count = message_count + $2, token_count = token_count + $3 WHERE id = $1",
            conversation_id,
            n,
            sum(tokens.values()),
        )
    return tokens


async def trimmed_request(chat, user, chat_db, llm_sandbox, n_messages):
    r = await chat.post("/talk_with", json={"message": "start", "character": "Batman"}, headers=user.headers)
    cid = r.json()["conversation_id"]
    await seed_history(chat_db, user.id, cid, n_messages, pin={0})
    await llm_sandbox.reset()
    r = await chat.post(
        "/talk_with",
        json={"message": "What do you remember?", "character": "Batman", "conversation_id": cid},
        headers=user.headers,
    )
    assert r.status_code == 200, r.text
    call = (await llm_sandbox.requests(provider="anthropic", path="/v1/messages"))[0]
    sent = json.dumps(call["body"]["messages"])
    markers = [int(m) for m in re.findall(r"\[m(\d+)\]", sent)]
    return r.json(), markers


@pytest.mark.parametrize("tier,n_messages,budget_total", [(0, 30, 12_000), (1, 90, 64_000)])
async def test_history_is_trimmed_to_the_tier_budget(
    chat, new_user, subscribe, chat_db, llm_sandbox, tier, n_messages, budget_total
):
    user = new_user(tier=tier)
    if tier:
        await subscribe(user.id, tier)
    body, markers = await trimmed_request(chat, user, chat_db, llm_sandbox, n_messages)
    assert 0 in markers  # the pinned (oldest) message is kept
    kept = [m for m in markers if m != 0]
    # The newest messages are kept, contiguous up to the last one; the oldest are dropped.
    assert kept == list(range(min(kept), n_messages))
    assert min(kept) > 1
    assert body["dropped_messages"] == (min(kept) - 1) + 2  # the unpinned old ones + the first exchange
    # It is as full as it can be within the budget (reply reserve included).
    input_budget = budget_total - 1024
    assert body["context_tokens"] <= input_budget
    assert body["context_tokens"] > input_budget - 1100  # one more ~1000-token message would not fit


async def test_pro_gets_more_history_than_free(chat, new_user, subscribe, chat_db, llm_sandbox):
    free = new_user()
    pro = new_user(tier=1)
    await subscribe(pro.id, 1)
    _, free_markers = await trimmed_request(chat, free, chat_db, llm_sandbox, 40)
    _, pro_markers = await trimmed_request(chat, pro, chat_db, llm_sandbox, 40)
    assert len(pro_markers) == 40 and len(free_markers) < 12


async def test_upgraded_user_with_a_free_token_gets_the_paid_window(chat, new_user, subscribe, chat_db, llm_sandbox):
    """The history window is first read at the size the token's tier claim allows; a user who
    upgraded since the token was issued gets it read again at the paid size."""
    user = new_user(tier=0)  # the token still says Free
    await subscribe(user.id, 1)
    body, markers = await trimmed_request(chat, user, chat_db, llm_sandbox, 40)
    assert len(markers) == 40  # all of ~40K tokens: more than Free's 12K window
    assert body["context_tokens"] > 12_000


async def test_history_window_of_a_long_conversation_is_the_defined_window(chat, new_user, chat_db):
    """The window read newest-first and stopped at the cap (migration 002) holds exactly the
    messages its definition names: the newest whose running token total stays within the cap,
    and every pinned message older than that, with the conversation's message count."""
    import random

    from chat_service.repositories import messages as msg_repo

    user = new_user()
    r = await chat.post("/talk_with", json={"message": "start", "character": "Batman"}, headers=user.headers)
    cid = r.json()["conversation_id"]
    rnd = random.Random(7)
    rows = [
        (str(uuid.uuid4()), cid, user.id, "user", "user", f"[m{i}]", rnd.randint(0, 400), rnd.random() < 0.02)
        for i in range(3000)
    ]
    async with chat_db.acquire() as conn:
        await conn.executemany(
            "INSERT INTO messages (id, conversation_id, user_id, sender, role, content, token_count, pinned) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            rows,
        )
        await conn.execute("UPDATE conversations SET message_count = message_count + $2 WHERE id = $1", cid, len(rows))
        everything = await conn.fetch(
            "SELECT id, seq, token_count, pinned FROM messages WHERE conversation_id = $1 ORDER BY seq", cid
        )

    def defined(cap, before):
        scope = [m for m in everything if before is None or m["seq"] < before]
        keep, running = set(), 0
        for m in reversed(scope):
            running += m["token_count"]
            if running <= cap or m["pinned"]:
                keep.add(m["id"])
        return [m["id"] for m in scope if m["id"] in keep], len(scope)

    seqs = [m["seq"] for m in everything]
    cases = [
        (12_000, None),
        (64_000, None),
        (0, None),
        (10**9, None),
        (12_000, seqs[1500]),
        (5_000, seqs[3]),
        (12_000, seqs[0]),
    ]
    for cap, before in cases:
        got = await msg_repo.recent_within(chat_db, cid, cap, before_seq=before)
        want_ids, total = defined(cap, before)
        assert [g["id"] for g in got] == want_ids, (cap, before)
        assert all(g["total"] == total for g in got), (cap, before)
    pinned_old = [m["id"] for m in everything[:1000] if m["pinned"]]
    assert pinned_old and set(pinned_old) <= {g["id"] for g in await msg_repo.recent_within(chat_db, cid, 12_000)}
