"""The `bench` marker: tests that run benchmark scripts are left out unless `-m` is given.

Running every script under bench/ with tiny arguments takes minutes on the shared two cores,
more than the CI suite can spend; `pytest tests/bench -m bench` runs them (docs/testing.md).
"""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "bench: runs a benchmark script; only with `-m bench` (docs/testing.md)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.option.markexpr:  # the caller chose with -m
        return
    deselected = [item for item in items if item.get_closest_marker("bench")]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if not item.get_closest_marker("bench")]
