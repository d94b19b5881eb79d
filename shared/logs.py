"""Structured JSON logs, each line carrying the request id of the request that wrote it."""

from __future__ import annotations

import atexit
import collections
import contextvars
import logging
import sys
import threading
import time

import orjson

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime", "taskName"}


class JSONFormatter(logging.Formatter):
    def __init__(self, service: str):
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def configure_logging(service: str, level: str = "INFO", json_lines: bool = True) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        JSONFormatter(service) if json_lines else logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("httpx", "httpcore", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # pika logs every broker outage as a burst of ERROR tracebacks; the bus logs one warning
    # per outage with the reason instead.
    logging.getLogger("pika").setLevel(logging.CRITICAL)


class AccessLog:
    """One JSON line per request, in the same shape as the other logs.

    Built without the logging machinery (a LogRecord, caller lookup and a handler lock cost
    more than the request itself on a hot route) and written by a background thread, so the
    event loop never waits on stdout.
    """

    _lines: collections.deque[bytes] = collections.deque()
    _wake = threading.Event()
    _thread: threading.Thread | None = None

    def __init__(self, service: str):
        self.service = service
        self.enabled = logging.getLogger("access").isEnabledFor(logging.INFO)
        if self.enabled:
            AccessLog._start()

    def write(self, request_id: str, method: str, path: str, status: int, duration_ms: float) -> None:
        now = time.time()
        self._lines.append(
            orjson.dumps(
                {
                    "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z",
                    "level": "info",
                    "service": self.service,
                    "logger": "access",
                    "msg": "request",
                    "request_id": request_id,
                    "method": method,
                    "path": path,
                    "status": status,
                    "duration_ms": round(duration_ms, 2),
                }
            )
        )
        if len(self._lines) > 256:
            self._wake.set()

    @classmethod
    def _start(cls) -> None:
        if cls._thread is None:
            cls._thread = threading.Thread(target=cls._run, name="access-log", daemon=True)
            cls._thread.start()
            atexit.register(cls.flush)

    @classmethod
    def _run(cls) -> None:
        while True:
            cls._wake.wait(0.2)
            cls._wake.clear()
            cls.flush()

    @classmethod
    def flush(cls) -> None:
        lines = []
        while cls._lines:
            try:
                lines.append(cls._lines.popleft())
            except IndexError:
                break
        if lines:
            try:
                sys.stdout.buffer.write(b"\n".join(lines) + b"\n")
                sys.stdout.flush()
            except (ValueError, OSError):  # stdout closed at interpreter exit
                pass
