"""Live co-editing of a room's story: the Yjs sync protocol (pycrdt-websocket 0.16) on
`/rooms/{id}/doc`.

- One `YRoom` per open room in this worker, its document holding one `Y.Text` named `body`.
  pycrdt-websocket does not load or save documents itself: `get_room` opens a room under a per-room
  lock (without it a second client's edits were lost): the stored updates are applied, and the
  story's text seeds a new document (or replaces the text of one whose story was edited outside
  the room since); the room is ready (synchronised) only then.
- Every update is appended to PostgreSQL (`PostgresYStore`, asyncpg: `room_doc_updates`); when the
  last client leaves, the rows are compacted into one update holding the whole state.
- The text is saved back to the story as a new version (`change: collab`) every
  ROOM_DOC_SAVE_SECONDS while it changed, and when the last client leaves.
- Roles: each connection is a `MemberChannel` carrying the member's role; a viewer's messages that
  would change the document (sync step 2, updates) are dropped before the room sees them. Role
  changes and removals reach open connections (`member_changed`).

A room lives in one worker's memory: run one worker, or route a room's connections to one worker.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import anyio
import asyncpg
from anyio import CancelScope, Lock
from pycrdt import Text, YMessageType, YSyncMessageType, merge_updates
from pycrdt.store import BaseYStore
from pycrdt.websocket import WebsocketServer, YRoom
from pycrdt.websocket.websocket_server import exception_logger
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from community_service.repositories import rooms as rooms_repo

log = logging.getLogger("community_service.collab")

DOC_TEXT = "body"
# Close codes sent to an open connection (4000-4999 are the application's).
CLOSE_REMOVED = 4403
CLOSE_ROOM_GONE = 4404
_WRITES = frozenset({YSyncMessageType.SYNC_STEP2, YSyncMessageType.SYNC_UPDATE})


def document_text(room: YRoom) -> str:
    return str(room.ydoc.get(DOC_TEXT, type=Text))


class PostgresYStore(BaseYStore):
    """A room's Yjs updates in `room_doc_updates` (ours: pycrdt's stores are files and SQLite).
    Updates arriving within FLUSH_SECONDS of each other are merged into one row: a row per
    keystroke would be a round trip per keystroke. A crash loses at most that window."""

    FLUSH_SECONDS = 0.1

    def __init__(self, path: str, metadata_callback=None, log: logging.Logger | None = None, *, pool=None):
        self.path = path  # the room id
        self.metadata_callback = metadata_callback
        self.log = log or logging.getLogger(__name__)
        self.pool = pool
        self._pending: list[bytes] = []
        self._flushing = False

    async def write(self, data: bytes) -> None:
        """Queues the update; the first write of a burst flushes it (and what follows) after FLUSH_SECONDS."""
        self._pending.append(data)
        if self._flushing:
            return
        self._flushing = True
        try:
            while self._pending:
                await anyio.sleep(self.FLUSH_SECONDS)
                batch, self._pending = self._pending, []
                if not batch:  # compacted meanwhile
                    break
                await self._insert(merge_updates(*batch) if len(batch) > 1 else batch[0])
        finally:
            self._flushing = False

    async def _insert(self, update: bytes) -> None:
        try:
            async with self.pool.acquire() as conn:
                await rooms_repo.append_update(conn, self.path, update)
        except asyncpg.ForeignKeyViolationError:
            self.log.info("update for a deleted room dropped", extra={"room_id": self.path})

    async def read(self) -> AsyncIterator[tuple[bytes, bytes, float]]:
        async with self.pool.acquire() as conn:
            updates = await rooms_repo.updates(conn, self.path)
        for update in updates:
            yield update, b"", 0.0

    async def compact(self, state: bytes) -> None:
        """Everything written so far replaced by `state` (the whole document, so updates still
        queued are in it), in one transaction."""
        self._pending.clear()
        async with self.pool.acquire() as conn, conn.transaction():
            up_to = await rooms_repo.last_seq(conn, self.path)
            if up_to is not None:
                await rooms_repo.compact(conn, self.path, up_to, state)


class MemberChannel:
    """One member's WebSocket as a pycrdt Channel; a viewer's writes never reach the room."""

    def __init__(self, websocket: WebSocket, room_id: str, user_id: str, role: str):
        self.websocket = websocket
        self._path = room_id
        self.user_id = user_id
        self.role = role
        self.refused = 0  # viewer writes dropped
        self.wrote = False
        self._send_lock = Lock()

    @property
    def path(self) -> str:
        return self._path

    def __aiter__(self):
        return self

    async def __anext__(self) -> bytes:
        while True:
            try:
                message = await self.websocket.receive()
            except (WebSocketDisconnect, RuntimeError):
                raise StopAsyncIteration from None
            if message["type"] == "websocket.disconnect" or self.role is None:
                raise StopAsyncIteration
            data = message.get("bytes")
            if not data:
                continue  # text frames are not Yjs messages
            if len(data) > 1 and data[0] == YMessageType.SYNC and data[1] in _WRITES:
                if self.role not in ("owner", "editor"):
                    self.refused += 1
                    continue
                self.wrote = True
            return data

    async def recv(self) -> bytes:
        return await self.__anext__()

    async def send(self, message: bytes) -> None:
        # Called in the room's task group: an error here would stop the room for everyone.
        try:
            async with self._send_lock:
                if self.websocket.application_state == WebSocketState.CONNECTED:
                    await self.websocket.send_bytes(message)
        except Exception:  # the client went away; its receive loop ends the connection
            pass

    async def close(self, code: int) -> None:
        try:
            await self.websocket.close(code)
        except Exception:
            pass


class RoomDocs(WebsocketServer):
    """The open rooms of this worker. `text_on_open(room_id, stored_text)` is the text an opening
    document must hold (None: keep it); `save(room_id, text, editor_id)` saves it back to the story."""

    def __init__(
        self,
        pool,
        text_on_open: Callable[[str, str | None], Awaitable[str | None]],
        save: Callable[[str, str, str | None], Awaitable[object]],
        save_interval: float,
    ):
        super().__init__(rooms_ready=False, auto_clean_rooms=False, exception_handler=exception_logger, log=log)
        self.pool = pool
        self._text_on_open = text_on_open
        self._save = save
        self.save_interval = save_interval
        self._locks: dict[str, Lock] = {}
        self._holders: dict[str, int] = {}  # connections using (or about to use) the open room
        self._channels: dict[str, set[MemberChannel]] = {}
        self._autosaves: dict[str, CancelScope] = {}
        self._saved_text: dict[str, str] = {}
        self._last_editor: dict[str, str] = {}
        self._all_closed = anyio.Event()

    def _lock(self, name: str) -> Lock:
        return self._locks.setdefault(name, Lock())

    async def get_room(self, name: str) -> YRoom:
        """The open room, or the room opened now from its stored updates (or its story's text);
        under the room's lock, so concurrent first connections share one loaded document."""
        async with self._lock(name):
            room = self.rooms.get(name)
            if room is None:
                room = await self._open(name)
            self._holders[name] = self._holders.get(name, 0) + 1
            return room

    async def _open(self, name: str) -> YRoom:
        ystore = PostgresYStore(name, log=log, pool=self.pool)
        room = YRoom(ready=False, ystore=ystore, exception_handler=exception_logger, log=log)
        self.rooms[name] = room
        try:
            await self.start_room(room)
            text = room.ydoc.get(DOC_TEXT, type=Text)
            stored = False
            async for update, *_ in ystore.read():
                room.ydoc.apply_update(update)
                stored = True
            replacement = await self._text_on_open(name, str(text) if stored else None)
            if replacement is not None and replacement != str(text):
                before = room.ydoc.get_state()
                with room.ydoc.transaction():
                    del text[:]
                    text.insert(0, replacement)
                await ystore.write(room.ydoc.get_update(before))
            self._saved_text[name] = str(text)
            room.ready = True
            # Updates are stored and broadcast once the room observes its document: no client
            # message may be applied before that.
            await room.ydoc_observed.wait()
        except BaseException:
            self.rooms.pop(name, None)
            with CancelScope(shield=True):
                await room.stop()
            raise
        self._autosaves[name] = await self._task_group.start(self._autosave, name, room)
        return room

    async def _autosave(self, name: str, room: YRoom, *, task_status=anyio.TASK_STATUS_IGNORED) -> None:
        with CancelScope() as scope:
            task_status.started(scope)
            while True:
                await anyio.sleep(self.save_interval)
                await self.save_now(name, room)

    async def save_now(self, name: str, room: YRoom) -> None:
        text = document_text(room)
        if text == self._saved_text.get(name):
            return
        try:
            await self._save(name, text, self._last_editor.get(name))
        except Exception as exc:  # moderation refused or unavailable, database hiccup: next time
            log.warning("room document not saved", extra={"room_id": name, "error": type(exc).__name__})
            return
        self._saved_text[name] = text

    async def serve(self, websocket: MemberChannel) -> None:
        name = websocket.path
        room = await self.get_room(name)
        self._channels.setdefault(name, set()).add(websocket)
        try:
            await room.serve(websocket)
        finally:
            self._channels[name].discard(websocket)
            if websocket.wrote:
                self._last_editor[name] = websocket.user_id
            with CancelScope(shield=True):
                await self._leave(name, room)

    async def _leave(self, name: str, room: YRoom) -> None:
        """The last connection out saves the text to the story, compacts the stored updates and
        closes the room (under its lock: a connection arriving meanwhile waits, then reopens it)."""
        lock = self._lock(name)
        async with lock:
            self._holders[name] -= 1
            if self._holders[name] > 0 or self.rooms.get(name) is not room:
                return
            del self._holders[name]
            scope = self._autosaves.pop(name, None)
            if scope is not None:
                scope.cancel()
            try:
                await self.save_now(name, room)
                await room.ystore.compact(room.ydoc.get_update())
            except Exception:
                log.exception("closing a room document", extra={"room_id": name})
            finally:
                self.rooms.pop(name, None)
                self._channels.pop(name, None)
                self._saved_text.pop(name, None)
                self._last_editor.pop(name, None)
                await room.stop()
                if not self.rooms:
                    self._all_closed.set()
        if not lock.locked() and lock.statistics().tasks_waiting == 0 and name not in self.rooms:
            self._locks.pop(name, None)

    async def member_changed(self, room_id: str, user_id: str, role: str | None) -> None:
        """A role change reaches the member's open connections; a removed member's are closed."""
        for channel in list(self._channels.get(room_id, ())):
            if channel.user_id == user_id:
                channel.role = role
                if role is None:
                    await channel.close(CLOSE_REMOVED)

    async def room_deleted(self, room_id: str) -> None:
        for channel in list(self._channels.get(room_id, ())):
            channel.role = None
            await channel.close(CLOSE_ROOM_GONE)

    def status(self, room_id: str) -> dict:
        return {"open": room_id in self.rooms, "connections": len(self._channels.get(room_id, ()))}

    async def close_all(self, timeout: float) -> None:
        """Shutdown: every connection closed, so every open room saves and compacts (bounded)."""
        if not self.rooms:
            return
        self._all_closed = anyio.Event()
        for channels in list(self._channels.values()):
            for channel in list(channels):
                channel.role = None
                await channel.close(1001)
        with anyio.move_on_after(timeout):
            await self._all_closed.wait()
