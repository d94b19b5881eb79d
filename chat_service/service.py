"""The chat domain entry point: `ChatEngine`, built once per app at start-up, composes the parts of
a turn. One-to-one talk lives here (plan, then with the quota held: prompt, model, save); the
parts are in their own modules: attachments, quota_plan (what a turn spends, and the figure it
shows), turns (reply metadata, `message.sent`, the save), follow_ups, group_chat, regenerate,
streaming (server-sent events). Routes stay thin.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from chat_service import budget, errors, follow_ups, group_chat, quota_plan, regenerate
from chat_service.attachments import check as check_attachments
from chat_service.context import CharacterContext, ContextBuilder, system_prompt
from chat_service.custom_characters import CustomCharacters
from chat_service.models import Attachment, GroupCharacter
from chat_service.repositories import conversations as conv_repo
from chat_service.repositories import messages as msg_repo
from chat_service.turns import Prepared, save_turn
from shared.auth import TIER_FREE, TIER_NAMES, CurrentUser
from shared.errors import INSUFFICIENT_TIER
from shared.llm import Completion, ImageInput, LLMRouter, LLMUnavailable, ModelSpec, Turn
from shared.llm.tokens import IMAGE_TOKENS, MESSAGE_OVERHEAD, count_tokens, system_tokens
from shared.quota import QuotaClient, Reservation
from shared.tiers import TierResolver


@dataclass
class TalkPlan:
    """A /talk_with message validated, its conversation loaded, its model and quota decided:
    everything before money is reserved."""

    user: CurrentUser
    tier: int
    text: str
    images: list[ImageInput]
    attachments_meta: list[dict[str, Any]]
    conversation: asyncpg.Record | None
    history_rows: list[asyncpg.Record] | None
    character: str
    series: str | None
    spec: ModelSpec
    quota: quota_plan.QuotaPlan
    cached_quota: bytes | None
    custom: CharacterContext | None = None  # a Community custom character's definition


class ChatEngine:
    def __init__(
        self,
        settings,
        pool: asyncpg.Pool,
        router: LLMRouter,
        contexts: ContextBuilder,
        quota: QuotaClient,
        tiers: TierResolver | None = None,
        custom: CustomCharacters | None = None,
    ):
        self.settings = settings
        self.custom = custom
        self.tiers = tiers
        self.pool = pool
        self.router = router
        self.contexts = contexts
        self.quota = quota
        self.tasks: set[asyncio.Task] = set()

    def track(self, task: asyncio.Task) -> None:
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def drain(self, timeout: float = 10.0) -> None:
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=timeout)

    # -- validation and choices --------------------------------------------------------------------
    def check_message(self, text: str) -> str:
        if text is None or not text.strip():
            raise errors.EMPTY_MESSAGE()
        limit = self.settings.chat_max_message_chars
        if len(text) > limit:
            raise errors.MESSAGE_TOO_LONG(
                f"The message is {len(text)} characters long; the limit is {limit}.", max_chars=limit, length=len(text)
            )
        return text.strip()

    def choose_model(self, model_id: str | None, tier: int, *, vision: bool = False) -> ModelSpec:
        if not self.router.configured:
            raise errors.llm_unavailable("No language model provider is configured on this server.")
        if model_id is None:
            spec = self.router.default_model(vision=vision)
            if spec is None:
                raise errors.llm_unavailable()
            return spec
        spec = self.router.get(model_id)
        if spec is None:
            raise errors.UNKNOWN_MODEL(
                f"Unknown model {model_id!r}.", model=model_id, available=[m.id for m in self.router.available_models()]
            )
        if spec.min_tier > tier:
            raise INSUFFICIENT_TIER(
                f"{spec.label or spec.id} needs the {TIER_NAMES[spec.min_tier]} plan or higher.",
                required_tier=spec.min_tier,
                current_tier=tier,
                model=spec.id,
            )
        if vision and not spec.vision:
            fallback = self.router.default_model(vision=True)
            if fallback is None:
                raise errors.MODEL_CANNOT_SEE_IMAGES(f"{spec.id} cannot read images and no vision model is configured.")
            # Same or cheaper class, so the caller is never charged more than asked.
            if fallback.quota_type == "regular" or spec.quota_type == "premium":
                return fallback
            raise errors.MODEL_CANNOT_SEE_IMAGES(f"{spec.id} cannot read images; choose a vision model.")
        if not self.router.chain(spec, vision):
            raise errors.llm_unavailable(f"The provider serving {spec.id} is not configured on this server.")
        return spec

    def conversation_model(self, conv, tier: int) -> str | None:
        """The model a conversation was using, unless the user's tier no longer allows it (then
        the default model takes over rather than refusing to continue)."""
        if conv is None or conv["model"] not in self.router.by_id:
            return None
        return conv["model"] if self.router.by_id[conv["model"]].min_tier <= tier else None

    # -- history -------------------------------------------------------------------------------------
    def input_budget(self, tier: int) -> int:
        total = self.settings.chat_context_budget_free if tier == TIER_FREE else self.settings.chat_context_budget_paid
        return max(1000, total - self.settings.llm_max_reply_tokens)

    async def history(
        self, conversation_id: str, system: str, new_tokens: int, tier: int, *, before_seq: int | None = None, rows=None
    ) -> tuple[list[asyncpg.Record], int, int]:
        """(kept rows chronological, tokens used, number dropped). `rows`: already read with
        `msg_repo.recent_within(..., self.input_budget(tier))`."""
        cap = self.input_budget(tier)
        if rows is None:
            rows = await msg_repo.recent_within(self.pool, conversation_id, cap, before_seq=before_seq)
        items = [budget.Item(str(r["id"]), r["token_count"] + MESSAGE_OVERHEAD, r["pinned"]) for r in rows]
        fitted = budget.fit(system_tokens(system), items, new_tokens, cap)
        keep = set(fitted.keep)
        kept = [r for r in rows if str(r["id"]) in keep]
        total = rows[0]["total"] if rows else 0  # rows beyond the window were dropped too
        return kept, fitted.used_tokens, int(total) - len(kept)

    # -- custom characters ---------------------------------------------------------------------------
    async def custom_context(self, character_id: str, user: CurrentUser, token: str | None) -> CharacterContext:
        """A Community custom character this caller may talk with (404 CHARACTER_NOT_FOUND, or 503
        COMMUNITY_UNAVAILABLE: raised before any quota is reserved)."""
        if self.custom is None:
            raise errors.COMMUNITY_UNAVAILABLE()
        return await self.custom.context(character_id, user.user_id, token)

    async def custom_contexts(self, character_ids, user: CurrentUser, token: str | None) -> dict[str, CharacterContext]:
        """Several custom characters (a group's cast), by id, read at once."""
        ids = list(dict.fromkeys(i for i in character_ids if i))
        contexts = await asyncio.gather(*(self.custom_context(i, user, token) for i in ids))
        return dict(zip(ids, contexts, strict=True))

    # -- one-to-one talk -----------------------------------------------------------------------------
    async def tier_and_cached_quota(self, user: CurrentUser) -> tuple[int, bytes | None]:
        """The caller's current tier and the cached quota snapshot, in one Redis round trip."""
        quota_key = self.quota.cache_key(user.user_id)
        if self.tiers is None:
            return user.tier, None
        if quota_key is None:
            return await self.tiers(user), None
        tier, (quota,) = await self.tiers.with_cached(user, quota_key)
        return tier, quota

    async def plan(
        self,
        user: CurrentUser,
        *,
        message: str,
        character: str,
        series: str | None,
        conversation_id: str | None,
        model: str | None,
        attachments: list[Attachment],
        character_id: str | None = None,
        token: str | None = None,
    ) -> TalkPlan:
        text = self.check_message(message)
        s = self.settings
        images, attachments_meta = check_attachments(attachments, s.chat_max_attachments, s.chat_max_image_bytes)
        conv = history_rows = None
        if conversation_id is None:
            tier, cached_quota = await self.tier_and_cached_quota(user)
        else:
            cid = errors.parse_uuid(conversation_id)
            # The current tier (with the cached quota snapshot: one Redis round trip) and the
            # conversation with its recent history (one query, scoped to the owner) at the same
            # time. The history window is sized by the token's tier claim, and read again in the
            # rare case the current tier allows more.
            guess = self.input_budget(user.tier)
            (tier, cached_quota), (conv, history_rows) = await asyncio.gather(
                self.tier_and_cached_quota(user), conv_repo.get_owned_with_history(self.pool, cid, user.user_id, guess)
            )
            if conv is None:
                raise errors.CONVERSATION_NOT_FOUND()
            if conv["conversation_type"] != "single":
                raise errors.NOT_A_SINGLE_CONVERSATION()
            if self.input_budget(tier) > guess:
                budget_tokens = self.input_budget(tier)
                conv, history_rows = await conv_repo.get_owned_with_history(self.pool, cid, user.user_id, budget_tokens)
                if conv is None:  # deleted meanwhile
                    raise errors.CONVERSATION_NOT_FOUND()
            character, series = conv["character_name"], conv["character_series"]
            participant = (conv["participants"] or [{}])[0]
            character_id = participant.get("character_id")
        custom = await self.custom_context(character_id, user, token) if character_id else None
        if custom is not None:
            character, series = custom.character, custom.series
        vision = bool(images)
        spec = self.choose_model(model or self.conversation_model(conv, tier), tier, vision=vision)
        return TalkPlan(
            user,
            tier,
            text,
            images,
            attachments_meta,
            conv,
            history_rows,
            character,
            series,
            spec,
            quota_plan.plan(spec, new_conversation=conv is None, vision=vision),
            cached_quota,
            custom,
        )

    async def prepare(self, plan: TalkPlan, reservations: list[Reservation]) -> Prepared:
        """The prompt (character context, history within budget): the expensive part, done with
        the quota already held."""
        conv = plan.conversation
        ctx = plan.custom or await self.contexts.get(plan.character, plan.series)
        system = system_prompt(ctx)
        text_tokens = count_tokens(plan.text)
        new_tokens = text_tokens + MESSAGE_OVERHEAD + IMAGE_TOKENS * len(plan.images)
        if conv is not None:
            rows, used, dropped = await self.history(
                str(conv["id"]), system, new_tokens, plan.tier, rows=plan.history_rows
            )
        else:
            rows, used, dropped = [], system_tokens(system) + new_tokens, 0
        turns = [Turn(r["role"], r["content"]) for r in rows]
        turns.append(Turn("user", plan.text, plan.images))
        return Prepared(
            user=plan.user,
            tier=plan.tier,
            spec=plan.spec,
            vision=bool(plan.images),
            conversation_id=str(conv["id"]) if conv is not None else str(uuid.uuid4()),
            conversation=conv,
            character=plan.character,
            series=plan.series,
            context=ctx,
            system=system,
            turns=turns,
            message=plan.text,
            message_tokens=text_tokens,
            attachments_meta=plan.attachments_meta,
            reservations=reservations,
            quota_type=plan.quota.main,
            context_tokens=used,
            dropped=dropped,
            quota_snapshot=quota_plan.early_snapshot(self.quota, plan.user.user_id, plan.quota, plan.cached_quota),
        )

    async def talk(self, plan: TalkPlan) -> dict[str, Any]:
        """A non-streamed reply: quota held from the prompt to the save, settled after it."""
        async with self.quota.reserved(plan.user.user_id, plan.quota.needs) as reservations:
            p = await self.prepare(plan, reservations)
            try:
                completion = await self.router.complete(p.spec, p.system, p.turns, tier=p.tier, vision=p.vision)
            except LLMUnavailable as exc:
                raise errors.llm_unavailable(attempts=exc.attempts) from None
            saved = await self.save_reply(p, completion)
        return await self.answer(p, completion, saved)

    async def save_reply(
        self,
        p: Prepared,
        completion: Completion,
        status: str = "complete",
        follow_up_questions: list[str] | None = None,
    ) -> tuple[str, str, list[str]]:
        """Follow-ups and the save (inside the quota block): (user message id, reply id, follow-ups)."""
        if follow_up_questions is None:
            follow_up_questions = await follow_ups.questions(self.router, self.settings, p, completion.text)
        user_message_id, rows = await save_turn(self.pool, p, [(p.character, completion, status)], follow_up_questions)
        return user_message_id, str(rows[0]["id"]), follow_up_questions

    async def answer(
        self,
        p: Prepared,
        completion: Completion,
        saved: tuple[str, str, list[str]],
        *,
        status: str = "complete",
        charged: bool = True,
    ) -> dict[str, Any]:
        """The /talk_with body (also the stream's `done`), once the quota is settled or released."""
        user_message_id, message_id, follow = saved
        quota = await quota_plan.view(
            self.quota, p.user.user_id, p.reservations if charged else [], p.quota_type, p.quota_snapshot
        )
        return {
            "response": completion.text,
            "conversation_id": p.conversation_id,
            "message_id": message_id,
            "user_message_id": user_message_id,
            "model": completion.model,
            "provider": completion.provider,
            "remaining_quota": quota["remaining"],
            "quota": quota,
            "follow_up_questions": follow,
            "usage": {"input_tokens": completion.input_tokens, "output_tokens": completion.output_tokens},
            "model_latency_ms": completion.latency_ms,
            "context_tokens": p.context_tokens,
            "dropped_messages": p.dropped,
            "status": status,
        }

    # -- the other flows -------------------------------------------------------------------------------
    async def group(
        self,
        user: CurrentUser,
        tier: int,
        *,
        characters: list[GroupCharacter],
        message: str,
        conversation_id: str | None,
        model: str | None,
        token: str | None = None,
    ) -> dict[str, Any]:
        return await group_chat.group(
            self,
            user,
            tier,
            characters=characters,
            message=message,
            conversation_id=conversation_id,
            model=model,
            token=token,
        )

    async def regenerate(
        self, user: CurrentUser, tier: int, conversation_id: str, model: str | None, token: str | None = None
    ) -> dict[str, Any]:
        return await regenerate.regenerate(self, user, tier, conversation_id, model, token)
