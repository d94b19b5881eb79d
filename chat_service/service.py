"""The chat flows (talk, stream, group, regenerate): validation, tier and quota, context,
history within budget, the model call, one transaction for messages and events.

Routes stay thin; everything here works on `ChatEngine`, built once per app at start-up.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import logging
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from chat_service import budget
from chat_service.context import STOPWORDS, CharacterContext, ContextBuilder, system_prompt
from chat_service.llm import Completion, ImageInput, LLMRouter, LLMUnavailable, ModelSpec, Turn
from chat_service.models import Attachment, GroupCharacter, message_out
from chat_service.repositories import conversations as conv_repo
from chat_service.repositories import messages as msg_repo
from shared.auth import TIER_FREE, TIER_NAMES, CurrentUser
from shared.bus import emit
from shared.db import is_unavailable, retry_unavailable
from shared.errors import APIError
from shared.events import EventType, make_event
from shared.quota import QuotaClient, Reservation
from shared.tiers import TierResolver

log = logging.getLogger("chat_service.service")

IMAGE_SIGNATURES = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "image/webp": (b"RIFF",),
}


def unavailable(message: str = "No language model is available right now; nothing was charged. Try again shortly.", **extra) -> APIError:
    return APIError(503, "LLM_UNAVAILABLE", message, headers={"Retry-After": "5"}, **extra)


def parse_uuid(value: str | None, what: str = "conversation") -> str | None:
    if value is None:
        return None
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise APIError(404, f"{what.upper()}_NOT_FOUND", f"No such {what}.") from None


@dataclass
class Prepared:
    """Everything a turn needs before the model is called."""

    user: CurrentUser
    tier: int
    spec: ModelSpec
    vision: bool
    conversation_id: str
    conversation: asyncpg.Record | None  # None: created when the turn is saved
    character: str
    series: str | None
    context: CharacterContext
    system: str
    turns: list[Turn]
    message: str
    message_tokens: int
    attachments_meta: list[dict[str, Any]]
    reservations: list[Reservation]
    quota_type: str | None  # the main quota this turn spent (None: none)
    context_tokens: int
    dropped: int
    quota_snapshot: asyncio.Future | None = None  # read early when the turn reserves nothing
    started: float = field(default_factory=time.perf_counter)


class ChatEngine:
    def __init__(self, settings, pool: asyncpg.Pool, router: LLMRouter, contexts: ContextBuilder, quota: QuotaClient,
                 tiers: TierResolver | None = None):
        self.settings = settings
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

    # -- validation ---------------------------------------------------------------------------
    def check_message(self, text: str) -> str:
        if text is None or not text.strip():
            raise APIError(422, "EMPTY_MESSAGE", "The message is empty.")
        limit = self.settings.chat_max_message_chars
        if len(text) > limit:
            raise APIError(422, "MESSAGE_TOO_LONG", f"The message is {len(text)} characters long; the limit is {limit}.", max_chars=limit, length=len(text))
        return text.strip()

    def choose_model(self, model_id: str | None, tier: int, *, vision: bool = False) -> ModelSpec:
        if not self.router.configured:
            raise unavailable("No language model provider is configured on this server.")
        if model_id is None:
            spec = self.router.default_model(vision=vision)
            if spec is None:
                raise unavailable()
            return spec
        spec = self.router.get(model_id)
        if spec is None:
            raise APIError(
                422,
                "UNKNOWN_MODEL",
                f"Unknown model {model_id!r}.",
                model=model_id,
                available=[m.id for m in self.router.available_models()],
            )
        if spec.min_tier > tier:
            raise APIError(
                402,
                "INSUFFICIENT_TIER",
                f"{spec.label or spec.id} needs the {TIER_NAMES[spec.min_tier]} plan or higher.",
                required_tier=spec.min_tier,
                current_tier=tier,
                model=spec.id,
            )
        if vision and not spec.vision:
            fallback = self.router.default_model(vision=True)
            if fallback is None:
                raise APIError(422, "MODEL_CANNOT_SEE_IMAGES", f"{spec.id} cannot read images and no vision model is configured.")
            # Same or cheaper class, so the caller is never charged more than asked.
            if fallback.quota_type == "regular" or spec.quota_type == "premium":
                return fallback
            raise APIError(422, "MODEL_CANNOT_SEE_IMAGES", f"{spec.id} cannot read images; choose a vision model.")
        if not self.router.chain(spec, vision):
            raise unavailable(f"The provider serving {spec.id} is not configured on this server.")
        return spec

    def conversation_model(self, conv, tier: int) -> str | None:
        """The model a conversation was using, unless the user's tier no longer allows it (then
        the default model takes over rather than refusing to continue)."""
        if conv is None or conv["model"] not in self.router.by_id:
            return None
        return conv["model"] if self.router.by_id[conv["model"]].min_tier <= tier else None

    def check_attachments(self, attachments: list[Attachment]) -> tuple[list[ImageInput], list[dict[str, Any]]]:
        if not attachments:
            return [], []
        if len(attachments) > self.settings.chat_max_attachments:
            raise APIError(422, "TOO_MANY_ATTACHMENTS", f"At most {self.settings.chat_max_attachments} images per message.", max_attachments=self.settings.chat_max_attachments)
        images: list[ImageInput] = []
        meta: list[dict[str, Any]] = []
        for i, a in enumerate(attachments):
            if bool(a.url) == bool(a.data):
                raise APIError(422, "INVALID_ATTACHMENT", f"Attachment {i}: give exactly one of url or data.", index=i)
            if a.url:
                if not re.match(r"^https?://", a.url):
                    raise APIError(422, "INVALID_ATTACHMENT", f"Attachment {i}: the url must be http(s).", index=i)
                images.append(ImageInput(url=a.url))
                meta.append({"type": "image", "url": a.url})
                continue
            try:
                raw = base64.b64decode(a.data, validate=True)
            except (binascii.Error, ValueError):
                raise APIError(422, "INVALID_ATTACHMENT", f"Attachment {i}: data is not valid base64.", index=i) from None
            if len(raw) > self.settings.chat_max_image_bytes:
                raise APIError(422, "ATTACHMENT_TOO_LARGE", f"Attachment {i} is {len(raw)} bytes; the limit is {self.settings.chat_max_image_bytes}.", index=i, max_bytes=self.settings.chat_max_image_bytes)
            sniffed = next((mt for mt, sigs in IMAGE_SIGNATURES.items() if any(raw.startswith(s) for s in sigs) and (mt != "image/webp" or raw[8:12] == b"WEBP")), None)
            if sniffed is None:
                raise APIError(422, "UNSUPPORTED_MEDIA_TYPE", f"Attachment {i} is not a JPEG, PNG, GIF or WebP image.", index=i)
            if a.media_type and a.media_type != sniffed:
                raise APIError(422, "INVALID_ATTACHMENT", f"Attachment {i} says {a.media_type} but is {sniffed}.", index=i)
            images.append(ImageInput(media_type=sniffed, data_b64=base64.b64encode(raw).decode()))
            meta.append({"type": "image", "media_type": sniffed, "bytes": len(raw), "sha256": hashlib.sha256(raw).hexdigest()})
        return images, meta

    # -- quota ----------------------------------------------------------------------------------
    async def reserve(self, user_id: str, quota_types: list[str]) -> list[Reservation]:
        held: list[Reservation] = []
        try:
            for qt in quota_types:
                held.append(await self.quota.reserve(user_id, qt, 1))
        except BaseException:
            await self.release(held)
            raise
        return held

    async def release(self, reservations: list[Reservation]) -> None:
        for r in reservations:
            try:
                await self.quota.release(r.reservation_id)
            except Exception:
                log.exception("quota release failed; the reservation expires on its own", extra={"reservation_id": r.reservation_id})

    async def settle(self, reservations: list[Reservation]) -> None:
        for r in reservations:
            try:
                await self.quota.settle(r.reservation_id)
            except Exception:
                log.exception("quota settle failed", extra={"reservation_id": r.reservation_id})

    def early_quota_snapshot(self, user_id: str, reservations: list[Reservation], main: str | None, cached: bytes | None = None) -> asyncio.Future | None:
        """A turn that reserves nothing for its main quota type changes nothing the snapshot
        shows: it comes from the cache value read with the tier, or (on a miss) from a read that
        runs while the model answers instead of after it."""
        if any(r.quota_type == main for r in reservations):
            return None

        async def read() -> dict | Exception:
            try:
                return await self.quota.remaining(user_id, cached)
            except Exception as exc:  # handed to quota_view (never an unretrieved task error)
                return exc

        return asyncio.ensure_future(read())

    async def quota_view(self, user_id: str, reservations: list[Reservation], main: str | None, snapshot: asyncio.Future | None = None) -> dict[str, Any]:
        for r in reservations:
            if r.quota_type == main:
                return {"type": r.quota_type, "remaining": r.remaining, "reset_at": r.reset_at.isoformat() if r.reset_at else None}
        qt = main or "regular"
        try:
            snap = await (snapshot if snapshot is not None else self.quota.remaining(user_id))
            if isinstance(snap, Exception):
                raise snap
            entry = snap.get(qt) or {}
            return {"type": qt, "remaining": int(entry.get("remaining", -1)), "reset_at": entry.get("reset_at")}
        except Exception as exc:  # the reply is saved; the count is informative only
            log.warning("quota snapshot unavailable", extra={"error": repr(exc)})
            return {"type": qt, "remaining": -1, "reset_at": None}

    # -- history ---------------------------------------------------------------------------------
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
        system_tokens = budget.system_tokens(system)
        items = [budget.Item(str(r["id"]), r["token_count"] + budget.MESSAGE_OVERHEAD, r["pinned"]) for r in rows]
        fitted = budget.fit(system_tokens, items, new_tokens, cap)
        keep = set(fitted.keep)
        kept = [r for r in rows if str(r["id"]) in keep]
        total = rows[0]["total"] if rows else 0  # rows beyond the window were dropped too
        return kept, fitted.used_tokens, int(total) - len(kept)

    # -- preparing a turn -----------------------------------------------------------------------
    async def tier_and_cached_quota(self, user: CurrentUser) -> tuple[int, bytes | None]:
        """The caller's current tier and the cached quota snapshot, in one Redis round trip."""
        quota_key = self.quota.cache_key(user.user_id)
        if self.tiers is None:
            return user.tier, None
        if quota_key is None:
            return await self.tiers(user), None
        tier, (quota,) = await self.tiers.with_cached(user, quota_key)
        return tier, quota

    async def prepare(self, user: CurrentUser, *, message: str, character: str, series: str | None,
                      conversation_id: str | None, model: str | None, attachments: list[Attachment]) -> Prepared:
        text = self.check_message(message)
        images, attachments_meta = self.check_attachments(attachments)
        vision = bool(images)
        conv = None
        history_rows = None
        if conversation_id is None:
            tier, cached_quota = await self.tier_and_cached_quota(user)
        else:
            cid = parse_uuid(conversation_id)
            # The current tier (with the cached quota snapshot: one Redis round trip) and the
            # conversation with its recent history (one query, scoped to the owner) at the same
            # time. The history window is sized by the token's tier claim, and read again in the
            # rare case the current tier allows more.
            guess = self.input_budget(user.tier)
            (tier, cached_quota), (conv, history_rows) = await asyncio.gather(
                self.tier_and_cached_quota(user), conv_repo.get_owned_with_history(self.pool, cid, user.user_id, guess)
            )
            if conv is None:
                raise APIError(404, "CONVERSATION_NOT_FOUND", "No such conversation.")
            if conv["conversation_type"] != "single":
                raise APIError(422, "NOT_A_SINGLE_CONVERSATION", "This is a group conversation: use /group_chat.")
            if self.input_budget(tier) > guess:
                conv, history_rows = await conv_repo.get_owned_with_history(self.pool, cid, user.user_id, self.input_budget(tier))
                if conv is None:  # deleted meanwhile
                    raise APIError(404, "CONVERSATION_NOT_FOUND", "No such conversation.")
            character, series = conv["character_name"], conv["character_series"]
        spec = self.choose_model(model or self.conversation_model(conv, tier), tier, vision=vision)
        # Reserve before any expensive work.
        needs: list[str] = []
        if conv is None:
            needs.append("regular")
        if spec.quota_type == "premium":
            needs.append("premium")
        if vision:
            needs.append("image_recognition")
        main = "premium" if "premium" in needs else ("image_recognition" if vision and conv is not None else ("regular" if conv is None else None))
        reservations = await self.reserve(user.user_id, needs)
        try:
            ctx = await self.contexts.get(character, series)
            system = system_prompt(ctx)
            text_tokens = budget.count_tokens(text)
            new_tokens = text_tokens + budget.MESSAGE_OVERHEAD + budget.IMAGE_TOKENS * len(images)
            if conv is not None:
                rows, used, dropped = await self.history(str(conv["id"]), system, new_tokens, tier, rows=history_rows)
            else:
                rows, used, dropped = [], budget.system_tokens(system) + new_tokens, 0
            turns = [Turn(r["role"], r["content"]) for r in rows]
            turns.append(Turn("user", text, images))
        except BaseException:
            await self.release(reservations)
            raise
        return Prepared(
            user=user,
            tier=tier,
            spec=spec,
            vision=vision,
            conversation_id=str(conv["id"]) if conv is not None else str(uuid.uuid4()),
            conversation=conv,
            character=character,
            series=series,
            context=ctx,
            system=system,
            turns=turns,
            message=text,
            message_tokens=text_tokens,
            attachments_meta=attachments_meta,
            reservations=reservations,
            quota_type=main,
            context_tokens=used,
            dropped=dropped,
            quota_snapshot=self.early_quota_snapshot(user.user_id, reservations, main, cached_quota),
        )

    # -- follow-ups --------------------------------------------------------------------------------
    def template_follow_ups(self, character: str, series: str | None, message: str) -> list[str]:
        first = character.split()[0] if character.split() else character
        where = series or "your story"
        return [
            f"What is your favourite memory from {where}, {first}?",
            f"What do you want most, {first}?",
            f"Who do you trust the most, {first}?",
        ]

    async def follow_ups(self, p: Prepared, reply: str) -> list[str]:
        fallback = self.template_follow_ups(p.character, p.series, p.message)
        if self.settings.chat_follow_ups != "llm" or not reply.strip():
            return fallback
        spec = self.router.get(self.settings.chat_follow_up_model or "") or p.spec
        system = (
            f"You suggest follow-up questions for a fan chatting with {p.character}"
            f"{' from ' + p.series if p.series else ''}. Write 3 short follow-up questions the fan could ask next, "
            "each under 15 words, in the fan's voice. Answer with a JSON array of strings only."
        )
        turns = [Turn("user", f"Fan: {p.message}\n{p.character}: {reply}\n\nThe 3 follow-up questions, as a JSON array:")]
        try:
            c = await asyncio.wait_for(
                self.router.complete(spec, system, turns, tier=p.tier, max_tokens=200), self.settings.chat_follow_up_timeout_seconds
            )
        except (LLMUnavailable, asyncio.TimeoutError) as exc:
            log.info("follow-up questions from the template", extra={"reason": type(exc).__name__})
            return fallback
        parsed = parse_questions(c.text)
        return parsed if len(parsed) >= 2 else fallback

    # -- saving ------------------------------------------------------------------------------------
    async def save_turn(
        self,
        p: Prepared,
        replies: list[tuple[str, Completion, str]],  # (sender, completion, status)
        follow_ups: list[str],
        *,
        conversation_type: str = "single",
        participants: list[dict[str, Any]] | None = None,
        character_label: str | None = None,
    ) -> tuple[str, list[asyncpg.Record]]:
        """The user message and the replies in one transaction, with their events."""
        user_message_id = str(uuid.uuid4())
        rows: list[dict[str, Any]] = []
        try:
            saved = await self._save_turn_statement(p, replies, follow_ups, user_message_id, rows, conversation_type, participants, character_label)
        except Exception as exc:
            if not is_unavailable(exc) or not rows:
                raise
            # The connection died around COMMIT: the turn may or may not be saved. Ask the
            # database (once it answers) rather than guess: quota is settled or released on
            # what is really there, and a saved turn is answered as saved.
            stored = await retry_unavailable(lambda: self._stored_rows([r["id"] for r in rows]))
            if len(stored) != len(rows):
                raise
            log.warning("turn saved although its commit was not acknowledged", extra={"conversation_id": p.conversation_id})
            saved = stored[1:]
        return user_message_id, saved

    async def _stored_rows(self, ids: list[str]) -> list[asyncpg.Record]:
        async with self.pool.acquire() as conn:
            return await msg_repo.by_ids(conn, ids)

    async def _save_turn_statement(self, p, replies, follow_ups, user_message_id, rows, conversation_type, participants, character_label):
        """save_turn's statement (one round trip, atomic); fills `rows` (the messages it writes)
        before sending it."""
        events = []
        new_conversation = None
        if p.conversation is None:
            new_conversation = {
                "user_id": p.user.user_id,
                "character_name": character_label or p.character,
                "character_series": p.series,
                "conversation_type": conversation_type,
                "participants": participants,
                "model": p.spec.id,
            }
            events.append(
                make_event(
                    EventType.CONVERSATION_CREATED,
                    p.user.user_id,
                    {"conversation_id": p.conversation_id, "character": character_label or p.character, "series": p.series, "type": conversation_type},
                    source="chat_service",
                )
            )
        rows.append({
            "id": user_message_id,
            "user_id": p.user.user_id,
            "sender": "user",
            "role": "user",
            "content": p.message,
            "token_count": p.message_tokens,
            "metadata": {"attachments": p.attachments_meta} if p.attachments_meta else {},
            "message_type": "image" if p.attachments_meta else "text",
        })
        for sender, c, status in replies:
            reply_tokens = budget.count_tokens(c.text)
            meta = {
                "model": c.model,
                "provider": c.provider,
                "provider_model": c.provider_model,
                "input_tokens": c.input_tokens,
                "output_tokens": c.output_tokens or reply_tokens,
                "latency_ms": c.latency_ms,
                "context_tokens": p.context_tokens,
                "dropped_messages": p.dropped,
                "quota_type": p.quota_type,
                "follow_up_questions": follow_ups,
            }
            if c.attempts:
                meta["fallbacks"] = c.attempts
            if status != "complete":
                meta["incomplete_reason"] = "client_disconnected"
            message_id = str(uuid.uuid4())
            rows.append({
                "id": message_id,
                "user_id": p.user.user_id,
                "sender": sender,
                "role": "assistant",
                "content": c.text,
                "token_count": reply_tokens,
                "metadata": meta,
                "status": status,
            })
            events.append(
                make_event(
                    EventType.MESSAGE_SENT,
                    p.user.user_id,
                    {
                        "conversation_id": p.conversation_id,
                        "message_id": message_id,
                        "model": c.model,
                        "provider": c.provider,
                        "input_tokens": c.input_tokens,
                        "output_tokens": c.output_tokens or reply_tokens,
                        "latency_ms": c.latency_ms,
                        "quota_type": p.quota_type,
                        "status": status,
                        "sender": sender,
                    },
                    source="chat_service",
                )
            )
        model = replies[0][1].model if replies else None
        saved = await msg_repo.save_turn(self.pool, p.conversation_id, rows, model, events, new_conversation=new_conversation)
        return list(saved)[1:]

    async def finish(
        self, p: Prepared, completion: Completion, status: str = "complete", follow_ups: list[str] | None = None, *, charge: bool = True
    ) -> dict[str, Any]:
        """Follow-ups, save, settle; returns the response body. Releases the quota on failure."""
        try:
            if follow_ups is None:
                follow_ups = await self.follow_ups(p, completion.text)
            user_message_id, rows = await self.save_turn(p, [(p.character, completion, status)], follow_ups)
        except BaseException:
            await self.release(p.reservations)
            raise
        if charge:
            await self.settle(p.reservations)
        else:
            await self.release(p.reservations)
        quota = await self.quota_view(p.user.user_id, p.reservations if charge else [], p.quota_type, p.quota_snapshot)
        return {
            "response": completion.text,
            "conversation_id": p.conversation_id,
            "message_id": str(rows[0]["id"]),
            "user_message_id": user_message_id,
            "model": completion.model,
            "provider": completion.provider,
            "remaining_quota": quota["remaining"],
            "quota": quota,
            "follow_up_questions": follow_ups,
            "usage": {"input_tokens": completion.input_tokens, "output_tokens": completion.output_tokens},
            "model_latency_ms": completion.latency_ms,
            "context_tokens": p.context_tokens,
            "dropped_messages": p.dropped,
            "status": status,
        }

    async def talk(self, p: Prepared) -> dict[str, Any]:
        try:
            completion = await self.router.complete(p.spec, p.system, p.turns, tier=p.tier, vision=p.vision)
        except LLMUnavailable as exc:
            await self.release(p.reservations)
            raise unavailable(attempts=exc.attempts) from None
        except BaseException:
            await self.release(p.reservations)
            raise
        return await self.finish(p, completion)

    # -- group chat ------------------------------------------------------------------------------
    async def group(self, user: CurrentUser, tier: int, *, characters: list[GroupCharacter], message: str,
                    conversation_id: str | None, model: str | None) -> dict[str, Any]:
        text = self.check_message(message)
        conv = None
        if conversation_id is not None:
            conv = await conv_repo.get_owned(self.pool, parse_uuid(conversation_id), user.user_id)
            if conv is None:
                raise APIError(404, "CONVERSATION_NOT_FOUND", "No such conversation.")
            if conv["conversation_type"] != "group":
                raise APIError(422, "NOT_A_GROUP_CONVERSATION", "This is a one-to-one conversation: use /talk_with.")
            cast = [GroupCharacter(**c) for c in conv["participants"] or []]
        else:
            cast = characters
        if not cast:
            raise APIError(422, "NO_CHARACTERS", "A group chat needs at least one character.")
        limit = self.settings.chat_max_group_characters
        if len(cast) > limit:
            raise APIError(422, "TOO_MANY_CHARACTERS", f"A group chat has at most {limit} characters; {len(cast)} were given.", max_characters=limit)
        names = [c.name.strip() for c in cast]
        if len({n.lower() for n in names}) != len(names):
            raise APIError(422, "DUPLICATE_CHARACTER", "Each character can join a group chat once.")
        spec = self.choose_model(model or self.conversation_model(conv, tier), tier)
        needs = (["regular"] if conv is None else []) + (["premium"] if spec.quota_type == "premium" else [])
        main = "premium" if spec.quota_type == "premium" else ("regular" if conv is None else None)
        reservations = await self.reserve(user.user_id, needs)
        try:
            contexts = await asyncio.gather(*(self.contexts.get(c.name, c.series) for c in cast))
            by_name = {c.name.strip(): ctx for c, ctx in zip(cast, contexts)}
            last_spoke: dict[str, int] = {}
            rows: list[asyncpg.Record] = []
            used, dropped = 0, 0
            new_tokens = budget.message_tokens(text)
            if conv is not None:
                # Budget against the longest system prompt among the cast.
                longest = max((system_prompt(ctx, group_names=names) for ctx in contexts), key=len)
                rows, used, dropped = await self.history(str(conv["id"]), longest, new_tokens, tier)
                last_spoke = await msg_repo.last_spoke(self.pool, conv["id"])
            order = turn_order(text, names, by_name, last_spoke, self.settings.chat_group_max_speakers)
            p = Prepared(
                user=user, tier=tier, spec=spec, vision=False,
                conversation_id=str(conv["id"]) if conv is not None else str(uuid.uuid4()), conversation=conv,
                character=" & ".join(names), series=cast[0].series, context=contexts[0], system="", turns=[],
                message=text, message_tokens=budget.count_tokens(text), attachments_meta=[], reservations=reservations,
                quota_type=main, context_tokens=used or new_tokens, dropped=dropped,
            )
            replies: list[tuple[str, Completion, str]] = []
            for speaker in order:
                system = system_prompt(by_name[speaker], group_names=names)
                turns = scene_turns(rows, speaker) + [Turn("user", text)]
                turns += [Turn("user", f"[{s}]: {c.text}") for s, c, _ in replies]
                try:
                    c = await self.router.complete(spec, system, turns, tier=tier)
                except LLMUnavailable as exc:
                    if not replies:
                        raise unavailable(attempts=exc.attempts) from None
                    log.warning("group chat: a speaker was skipped", extra={"speaker": speaker})
                    break
                replies.append((speaker, c, "complete"))
            transcript = "\n".join(f"{s}: {c.text}" for s, c, _ in replies)
            follow = await self.follow_ups(
                Prepared(**{**p.__dict__, "character": replies[0][0], "context": by_name[replies[0][0]]}), transcript
            )
            participants = [{"name": c.name.strip(), "series": c.series} for c in cast]
            user_message_id, saved = await self.save_turn(
                p, replies, follow, conversation_type="group", participants=participants, character_label=" & ".join(names)
            )
        except BaseException:
            await self.release(reservations)
            raise
        await self.settle(reservations)
        quota = await self.quota_view(user.user_id, reservations, main)
        return {
            "conversation_id": p.conversation_id,
            "user_message_id": user_message_id,
            "replies": [
                {"message_id": str(row["id"]), "sender": s, "response": c.text, "model": c.model, "provider": c.provider}
                for (s, c, _), row in zip(replies, saved)
            ],
            "turn_order": order,
            "remaining_quota": quota["remaining"],
            "quota": quota,
            "follow_up_questions": follow,
        }

    # -- regenerate ------------------------------------------------------------------------------
    async def regenerate(self, user: CurrentUser, tier: int, conversation_id: str, model: str | None) -> dict[str, Any]:
        conv = await conv_repo.get_owned(self.pool, parse_uuid(conversation_id), user.user_id)
        if conv is None:
            raise APIError(404, "CONVERSATION_NOT_FOUND", "No such conversation.")
        last_user = await msg_repo.last_user_message(self.pool, conv["id"])
        if last_user is None:
            raise APIError(409, "NOTHING_TO_REGENERATE", "This conversation has no message to answer.")
        old_replies = [r for r in await msg_repo.replies_after(self.pool, conv["id"], last_user["seq"]) if r["role"] == "assistant"]
        spec = self.choose_model(model or self.conversation_model(conv, tier), tier)
        needs = ["premium"] if spec.quota_type == "premium" else []
        reservations = await self.reserve(user.user_id, needs)
        try:
            group = conv["conversation_type"] == "group"
            participants = conv["participants"] or []
            names = [c["name"] for c in participants] if group else [conv["character_name"]]
            series_of = {c["name"]: c.get("series") for c in participants} if group else {conv["character_name"]: conv["character_series"]}
            speakers = [r["sender"] for r in old_replies if r["sender"] in series_of] or [names[0]]
            text = last_user["content"]
            new_tokens = budget.message_tokens(text)
            results: list[tuple[str, Completion]] = []
            rows: list[asyncpg.Record] = []
            used = dropped = 0
            for speaker in speakers:
                ctx = await self.contexts.get(speaker, series_of.get(speaker))
                system = system_prompt(ctx, group_names=names if group else None)
                if not rows:
                    rows, used, dropped = await self.history(str(conv["id"]), system, new_tokens, tier, before_seq=last_user["seq"])
                turns = (scene_turns(rows, speaker) if group else [Turn(r["role"], r["content"]) for r in rows]) + [Turn("user", text)]
                turns += [Turn("user", f"[{s}]: {c.text}") for s, c in results]
                try:
                    c = await self.router.complete(spec, system, turns, tier=tier)
                except LLMUnavailable as exc:
                    raise unavailable(attempts=exc.attempts) from None
                results.append((speaker, c))
            saved = []
            async with self.pool.acquire() as conn:
                async with conn.transaction():
                    events = []
                    for i, (speaker, c) in enumerate(results):
                        reply_tokens = budget.count_tokens(c.text)
                        meta_new = {
                            "model": c.model, "provider": c.provider, "provider_model": c.provider_model,
                            "input_tokens": c.input_tokens, "output_tokens": c.output_tokens, "latency_ms": c.latency_ms,
                            "context_tokens": used, "dropped_messages": dropped, "quota_type": "premium" if needs else None,
                            "regenerated": True,
                        }
                        old = old_replies[i] if i < len(old_replies) else None
                        if old is not None:
                            old_meta = dict(old["metadata"] or {})
                            alternatives = old_meta.pop("alternatives", [])
                            alternatives.append({
                                "content": old["content"], "model": old_meta.get("model"), "status": old["status"],
                                "created_at": (old["edited_at"] or old["created_at"]).isoformat(),
                            })
                            meta_new["alternatives"] = alternatives
                            if "follow_up_questions" in old_meta:
                                meta_new["follow_up_questions"] = old_meta["follow_up_questions"]
                            row = await msg_repo.replace_reply(conn, old["id"], content=c.text, token_count=reply_tokens, sender=speaker, metadata=meta_new)
                        else:
                            row = await msg_repo.insert(
                                conn, message_id=str(uuid.uuid4()), conversation_id=str(conv["id"]), user_id=user.user_id,
                                sender=speaker, role="assistant", content=c.text, token_count=reply_tokens, metadata=meta_new,
                            )
                        saved.append(row)
                        events.append(make_event(EventType.MESSAGE_SENT, user.user_id, {
                            "conversation_id": str(conv["id"]), "message_id": str(row["id"]), "model": c.model, "provider": c.provider,
                            "input_tokens": c.input_tokens, "output_tokens": c.output_tokens, "latency_ms": c.latency_ms,
                            "quota_type": "premium" if needs else None, "regenerated": True, "sender": speaker,
                        }, source="chat_service"))
                    await conv_repo.recount(conn, str(conv["id"]), model=spec.id)
                    await emit(conn, *events)
        except BaseException:
            await self.release(reservations)
            raise
        await self.settle(reservations)
        return {"conversation_id": str(conv["id"]), "messages": [message_out(r) for r in saved]}


# -- helpers ------------------------------------------------------------------------------------




def parse_questions(text: str) -> list[str]:
    """A JSON array of strings (or {"questions": [...]}) somewhere in the model's answer."""
    candidates = []
    start, end = text.find("["), text.rfind("]")
    if start != -1 and end > start:
        candidates.append(text[start : end + 1])
    candidates.append(text)
    for cand in candidates:
        try:
            data = json.loads(cand)
        except ValueError:
            continue
        if isinstance(data, dict):
            data = data.get("questions")
        if isinstance(data, list):
            qs = [" ".join(str(q).split()) for q in data if isinstance(q, str) and q.strip()]
            return [q[:200] for q in qs][:3]
    return []


def _name_pattern(name: str) -> re.Pattern:
    parts = [re.escape(name)] + [re.escape(w) for w in name.split() if len(w) >= 3 and w.lower() not in {"the", "and", "mr.", "mrs.", "dr."}]
    return re.compile(r"(?<![\w])(?:@)?(" + "|".join(parts) + r")(?![\w])", re.IGNORECASE)


def turn_order(message: str, names: list[str], contexts: dict[str, CharacterContext], last_spoke: dict[str, int], max_speakers: int) -> list[str]:
    """Who answers, in order: the characters the message names (in the order it names them);
    with no mention, the most relevant to the message (shared words with what we know of them),
    then whoever has waited longest for a turn; at most `max_speakers` then."""
    mentions: list[tuple[int, int, str]] = []
    for i, name in enumerate(names):
        m = _name_pattern(name).search(message)
        if m:
            mentions.append((m.start(), i, name))
    if mentions:
        return [n for _, _, n in sorted(mentions)]
    words = {w for w in re.findall(r"[a-z]{4,}", message.lower())} - STOPWORDS
    scored = []
    for i, name in enumerate(names):
        relevance = len(words & contexts[name].keywords()) if name in contexts else 0
        waited = last_spoke.get(name, -1)  # never spoke: -1, first in line
        scored.append((-relevance, waited, i, name))
    scored.sort()
    return [n for *_, n in scored[: max(1, max_speakers)]]


def scene_turns(rows: list[asyncpg.Record], speaker: str) -> list[Turn]:
    """A group transcript from one character's point of view: its own lines are the assistant's,
    the fan's and the other characters' lines (named) are the user's."""
    turns = []
    for r in rows:
        if r["role"] == "assistant" and r["sender"] == speaker:
            turns.append(Turn("assistant", r["content"]))
        elif r["role"] == "assistant":
            turns.append(Turn("user", f"[{r['sender']}]: {r['content']}"))
        else:
            turns.append(Turn("user", r["content"]))
    return turns
