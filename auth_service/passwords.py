"""argon2id password hashing, off the event loop.

Each hash runs in a worker thread (asyncio.to_thread) and a semaphore bounds how many run at once,
so a burst of logins cannot take every thread or `concurrency x memory_cost` of RAM. A login for
an unknown email still verifies against a dummy hash, so its timing does not reveal whether the
account exists. Passwords are never logged or stored in the clear.
"""

from __future__ import annotations

import asyncio
import os

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError


class Passwords:
    def __init__(self, *, time_cost: int, memory_kib: int, parallelism: int, concurrency: int = 0):
        self.hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, hash_len=32, salt_len=16, type=Type.ID
        )
        self._slots = asyncio.Semaphore(concurrency or os.cpu_count() or 2)
        self._dummy: str | None = None

    @property
    def parameters(self) -> str:
        p = self.hasher
        return f"argon2id t={p.time_cost} m={p.memory_cost} KiB p={p.parallelism}"

    async def hash(self, password: str) -> str:
        async with self._slots:
            return await asyncio.to_thread(self.hasher.hash, password)

    def _verify(self, stored: str, password: str) -> bool:
        try:
            return self.hasher.verify(stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    async def verify(self, stored: str | None, password: str) -> bool:
        """True when `password` matches `stored`; a None hash costs the same and is False."""
        if stored is None:
            if self._dummy is None:
                self._dummy = await self.hash("dummy password for timing equalisation")
            async with self._slots:
                await asyncio.to_thread(self._verify, self._dummy, password)
            return False
        async with self._slots:
            return await asyncio.to_thread(self._verify, stored, password)

    def needs_rehash(self, stored: str) -> bool:
        try:
            return self.hasher.check_needs_rehash(stored)
        except InvalidHashError:
            return True
