"""Server-sent events for `/talk_with`.

The model is read by a task of its own (`StreamRun`), not by the response body: when the client
goes away the body is cancelled and tells the run, which stops the model, saves the partial reply
marked `incomplete` (with the user's message) and spends only what was used (nothing when no
token was produced). Frames:

    event: token   data: {"text": "..."}                 one per delta
    event: done    data: {response, conversation_id, message_id, usage, remaining_quota, follow_up_questions, ...}
    event: error   data: {"code": "...", "message": "..."}
    : heartbeat                                           a comment, while waiting
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import orjson

from chat_service import errors, follow_ups, quota_plan
from chat_service.service import ChatEngine, TalkPlan
from chat_service.turns import Prepared
from shared.errors import ErrorCode
from shared.llm import Completion, LLMUnavailable, StreamResult
from shared.llm.tokens import count_tokens

log = logging.getLogger("chat_service.streaming")


def frame(event: str, data: Any) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def frame_error(code: ErrorCode) -> dict[str, str]:
    return {"code": code.code, "message": code.message}


HEARTBEAT = b": heartbeat\n\n"


class StreamRun:
    """One streamed reply, read by its own task. The task holds the quota (`quota.reserved`) from
    the prompt to the save; `ready` resolves once the quota is reserved and the prompt built, or
    carries the error (402, 404, ...) the route answers as plain JSON before any stream starts."""

    def __init__(self, engine: ChatEngine, plan: TalkPlan):
        self.engine = engine
        self.plan = plan
        self.p: Prepared | None = None
        self.queue: asyncio.Queue = asyncio.Queue()
        self.parts: list[str] = []
        self.result: StreamResult | None = None
        self.client_gone = False
        self._reading = False
        self.task: asyncio.Task | None = None
        self.ready: asyncio.Future = asyncio.get_running_loop().create_future()
        self.finished = asyncio.Event()
        self.save_failed = False

    def start(self) -> StreamRun:
        self.task = asyncio.create_task(self._run(), name="chat-stream")
        self.engine.track(self.task)
        return self

    async def started(self) -> None:
        """Wait for `ready`; a caller that gives up (the client left) stops the run."""
        try:
            await asyncio.shield(self.ready)
        except asyncio.CancelledError:
            if self.task is not None:
                self.task.cancel()
            raise

    def abort(self) -> None:
        """The client went away: stop reading the model (the run then saves what it has)."""
        if self.finished.is_set() or self.client_gone:
            return
        self.client_gone = True
        if self._reading and self.task is not None:
            self.task.cancel()

    async def _run(self) -> None:
        engine, plan = self.engine, self.plan
        try:
            async with engine.quota.reserved(plan.user.user_id, plan.quota.needs) as reservations:
                self.p = await engine.prepare(plan, reservations)
                self.ready.set_result(None)
                error = await self._read()
                saved = await self._save(error)
            await self._send(error, saved)  # the quota is settled or released by now
        except BaseException as exc:
            if self.ready.done():
                raise
            if isinstance(exc, asyncio.CancelledError):
                self.ready.cancel()
                raise
            self.ready.set_exception(exc)  # before the stream: the route answers it as JSON
        finally:
            self.finished.set()

    async def _read(self) -> LLMUnavailable | None:
        """Read the model into the queue until it ends, fails or the client leaves. A cancellation
        that is not our abort (a shutdown) propagates: the quota is released."""
        p = self.p
        error: LLMUnavailable | None = None
        self.result = StreamResult()  # the model's time (latency, first token) starts now
        self._reading = True
        deltas = self.engine.router.stream(p.spec, p.system, p.turns, self.result, tier=p.tier, vision=p.vision)
        try:
            async for delta in deltas:
                self.parts.append(delta)
                self.queue.put_nowait(("token", {"text": delta}))
                if self.client_gone:
                    break
        except asyncio.CancelledError:
            if not self.client_gone:  # a shutdown, not our abort
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
        except LLMUnavailable as exc:
            error = exc
        except Exception as exc:  # an SDK error we did not classify: the same for the client
            log.exception("stream failed")
            error = LLMUnavailable(repr(exc))
        finally:
            self._reading = False
            await deltas.aclose()  # closes the provider's HTTP stream and frees its slot
        return error

    async def _save(self, error: LLMUnavailable | None) -> tuple[Completion, tuple[str, str, list[str]], str] | None:
        """Inside the quota block: save what was produced, and give the quota back when nothing
        chargeable was (no text, a model that failed mid-reply, a failed save); a client that left
        has used what it got. (completion, saved ids, status), or None when nothing was saved."""
        p = self.p
        text = "".join(self.parts)
        if not text:
            quota_plan.give_back(p.reservations)
            return None
        if self.result.spec is None:  # no token yet but a model answered (an empty reply)
            self.result.spec = p.spec
        completion = self.result.completion(text)
        if not completion.output_tokens or self.client_gone or error is not None:
            completion.output_tokens = count_tokens(text)
        status = "complete" if (error is None and not self.client_gone) else "incomplete"
        if error is not None:
            quota_plan.give_back(p.reservations)
        try:
            follow = None if status == "complete" else follow_ups.template(p.character, p.series, p.message)
            return completion, await self.engine.save_reply(p, completion, status, follow), status
        except Exception:
            log.exception("saving a streamed reply failed")
            quota_plan.give_back(p.reservations)
            self.save_failed = True
            return None

    async def _send(self, error: LLMUnavailable | None, saved) -> None:
        if saved is None:
            if self.save_failed:
                self.queue.put_nowait(("error", frame_error(errors.SAVE_FAILED)))
            elif error is not None:
                self.queue.put_nowait(("error", {**frame_error(errors.LLM_UNAVAILABLE), "attempts": error.attempts}))
            return  # the client left before any text: nobody to tell
        completion, ids, status = saved
        body = await self.engine.answer(self.p, completion, ids, status=status, charged=error is None)
        body["first_token_ms"] = self.result.first_token_ms
        if error is None:
            self.queue.put_nowait(("done", body))
            return
        self.queue.put_nowait(
            (
                "error",
                {
                    **frame_error(errors.LLM_STREAM_INTERRUPTED),
                    "message_id": body["message_id"],
                    "conversation_id": body["conversation_id"],
                },
            )
        )

    async def events(self, heartbeat_seconds: float) -> AsyncIterator[bytes]:
        """Frames as they come; whatever is already queued goes out in one write."""
        getter: asyncio.Future | None = None
        try:
            while True:
                if getter is None and self.queue.empty():
                    getter = asyncio.ensure_future(self.queue.get())
                if getter is not None:
                    done, _ = await asyncio.wait({getter}, timeout=heartbeat_seconds)
                    if not done:
                        yield HEARTBEAT
                        continue
                    items = [getter.result()]
                    getter = None
                else:
                    items = []
                while not self.queue.empty():
                    items.append(self.queue.get_nowait())
                chunk = b"".join(frame(kind, data) for kind, data in items)
                yield chunk
                if any(kind in ("done", "error") for kind, _ in items):
                    return
        finally:
            if getter is not None and not getter.done():
                getter.cancel()
            self.abort()
