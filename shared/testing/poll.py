"""Polling until a condition holds: the one helper behind the `eventually` fixture and the e2e
modules' waits."""

from __future__ import annotations

import asyncio
import time


async def eventually(check, timeout: float = 10.0, interval: float = 0.05, what: str = "condition"):
    """Polls `check` (sync or async) until it answers something truthy and returns that answer;
    AssertionError naming `what` and the last answer after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        answer = check()
        if asyncio.iscoroutine(answer):
            answer = await answer
        if answer:
            return answer
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout}s (last: {answer!r})")
        await asyncio.sleep(interval)
