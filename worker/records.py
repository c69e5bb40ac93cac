"""The worker's one door to the database: a domain service function run in a short session of its own.

The worker never builds queries or writes rows itself: every read and every state change is a
keyword-only function of a domain service (`service.jobs.lifecycle`, `service.models.lifecycle`,
...), called here with a fresh session that closes before the call returns, so no transaction
stays open during long work. `tests/test_boundaries.py` holds the rest of `worker/` to that.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import service.orm  # noqa: F401  (every table must be known before the first flush)
from service.db import new_session

T = TypeVar("T")


def call(operation: Callable[..., T], /, **arguments: Any) -> T:
    """`operation(session=..., **arguments)` in a session of its own; rows it returns come back detached."""
    with new_session() as session:
        return operation(session=session, **arguments)
