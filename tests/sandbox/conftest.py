"""Fixtures for the sandbox's own tests: the session's sandbox (shared.testing.plugin), reset before
each test.

Not a second sandbox of their own: `service_env` is session-scoped, and built with whichever
`sandbox` the first test asking for it sees; with two instances, services started by later
modules (media, community) talked to one sandbox while their tests read the other."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sandbox.testing import SandboxHandle  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_sandbox(sandbox: SandboxHandle) -> None:
    sandbox.control.reset()
