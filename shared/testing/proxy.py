"""A TCP proxy a test can cut: stands between a service and PostgreSQL or RabbitMQ, so a test
can make the dependency unreachable (and kill live connections) without stopping the shared
server that other test runs use."""

from __future__ import annotations

import asyncio


class TcpProxy:
    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.base_events.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()
        self.up = True

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.up:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        if not self.up:  # cut while this link was being opened: it must not survive the cut
            up_writer.transport.abort()
            writer.transport.abort()
            return
        self._links.update({writer, up_writer})

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                dst.close()
                self._links.discard(dst)

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def cut(self) -> None:
        """Refuse new connections and drop every open one (the dependency 'goes down')."""
        self.up = False
        for w in list(self._links):
            w.transport.abort()
        self._links.clear()

    def restore(self) -> None:
        self.up = True

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


class ThreadedTcpProxy:
    """A TcpProxy on its own event loop in a daemon thread, so it keeps relaying while the test's
    loop is busy or blocked (starting uvicorn processes, sync fixtures). `cut()` / `restore()` are
    safe from any thread; `cut()` returns once every open link has been dropped.

        proxy = ThreadedTcpProxy("127.0.0.1", 5672).start()
        url = proxy.rewrite("amqp://guest:guest@127.0.0.1:5672/vhost")   # same URL, via the proxy
        proxy.cut(); ...; proxy.restore(); proxy.close()
    """

    def __init__(self, target_host: str, target_port: int):
        self._proxy = TcpProxy(target_host, target_port)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = None

    @property
    def port(self) -> int:
        return self._proxy.port

    @property
    def up(self) -> bool:
        return self._proxy.up

    def start(self, timeout: float = 10.0) -> ThreadedTcpProxy:
        import threading

        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=f"tcp-proxy-{self._proxy.target[1]}", daemon=True
        )
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._proxy.start(), self._loop).result(timeout)
        return self

    def _call(self, fn, timeout: float = 10.0) -> None:
        async def run():
            fn()

        asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout)

    def cut(self) -> None:
        self._call(self._proxy.cut)

    def restore(self) -> None:
        self._call(self._proxy.restore)

    def rewrite(self, url: str) -> str:
        """`url` with its host:port replaced by this proxy's address (credentials, path kept)."""
        from urllib.parse import urlsplit, urlunsplit

        parts = urlsplit(url)
        userinfo = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
        return urlunsplit(parts._replace(netloc=f"{userinfo}127.0.0.1:{self.port}"))

    def close(self) -> None:
        if self._loop is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._proxy.close(), self._loop).result(10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
            self._loop.close()
            self._loop = None

    def __enter__(self) -> ThreadedTcpProxy:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()
