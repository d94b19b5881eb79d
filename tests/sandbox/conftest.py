"""Fixtures for the sandbox's own tests: one sandbox server for the session, reset before each test."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sandbox.testing import SandboxHandle, start_sandbox_in_thread  # noqa: E402


@pytest.fixture(scope="session")
def sandbox() -> SandboxHandle:
    handle = start_sandbox_in_thread()
    yield handle
    handle.stop()


@pytest.fixture(autouse=True)
def _fresh_sandbox(sandbox: SandboxHandle) -> None:
    sandbox.control.reset()
