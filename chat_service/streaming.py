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
from typing import Any, AsyncIterator

import orjson

from chat_service import budget
from chat_service.llm import LLMUnavailable, StreamResult
from chat_service.service import ChatEngine, Prepared

log = logging.getLogger("chat_service.streaming")


def frame(event: str, data: Any) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


HEARTBEAT = b": heartbeat\n\n"


class StreamRun:
    def __init__(self, engine: ChatEngine, p: Prepared):
        self.engine = engine
        self.p = p
        self.queue: asyncio.Queue = asyncio.Queue()
        self.parts: list[str] = []
        self.result = StreamResult()
        self.client_gone = False
        self._reading = False
        self.task: asyncio.Task | None = None
        self.finished = asyncio.Event()

    def start(self) -> "StreamRun":
        self.task = asyncio.create_task(self._run(), name="chat-stream")
        self.engine.track(self.task)
        return self

    def abort(self) -> None:
        """The client went away: stop reading the model (the run then saves what it has)."""
        if self.finished.is_set() or self.client_gone:
            return
        self.client_gone = True
        if self._reading and self.task is not None:
            self.task.cancel()

    async def _run(self) -> None:
        p = self.p
        engine = self.engine
        error: LLMUnavailable | None = None
        self._reading = True
        deltas = engine.router.stream(p.spec, p.system, p.turns, self.result, tier=p.tier, vision=p.vision)
        try:
            async for delta in deltas:
                self.parts.append(delta)
                self.queue.put_nowait(("token", {"text": delta}))
                if self.client_gone:
                    break
        except asyncio.CancelledError:
            if not self.client_gone:  # a shutdown, not our abort
                self._reading = False
                await asyncio.shield(engine.release(p.reservations))
                self.finished.set()
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
        try:
            await self._finish(error)
        finally:
            self.finished.set()

    async def _finish(self, error: LLMUnavailable | None) -> None:
        p = self.p
        engine = self.engine
        text = "".join(self.parts)
        if error is not None and not text:
            await engine.release(p.reservations)
            self.queue.put_nowait(("error", {
                "code": "LLM_UNAVAILABLE",
                "message": "No language model is available right now; nothing was charged. Try again shortly.",
                "attempts": error.attempts,
            }))
            return
        if self.client_gone and not text:
            await engine.release(p.reservations)  # nothing was produced: nothing is spent
            return
        if self.result.spec is None:  # no token yet but a model answered (an empty reply)
            self.result.spec = p.spec
        completion = self.result.completion(text)
        if not completion.output_tokens or self.client_gone or error is not None:
            completion.output_tokens = budget.count_tokens(text)
        status = "complete" if (error is None and not self.client_gone) else "incomplete"
        try:
            follow = None if status == "complete" else engine.template_follow_ups(p.character, p.series, p.message)
            # A model that failed mid-reply is not charged; a client that left has used what it got.
            body = await engine.finish(p, completion, status=status, follow_ups=follow, charge=error is None)
        except Exception:
            log.exception("saving a streamed reply failed")
            self.queue.put_nowait(("error", {"code": "SAVE_FAILED", "message": "The reply could not be saved; nothing was charged."}))
            return
        body["first_token_ms"] = self.result.first_token_ms
        if error is not None:
            self.queue.put_nowait(("error", {
                "code": "LLM_STREAM_INTERRUPTED",
                "message": "The model stopped in the middle of the reply; the part received was saved.",
                "message_id": body["message_id"],
                "conversation_id": body["conversation_id"],
            }))
        else:
            self.queue.put_nowait(("done", body))

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
