"""Chaos tests share the servers with everything else, so the ones that restart them run last."""

from __future__ import annotations

import pytest

DESTRUCTIVE = "test_outages.py"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Move the Postgres and Redis restart tests to the end of the session (a stable sort)."""
    items.sort(key=lambda item: item.path.name == DESTRUCTIVE)
