"""One request of the Postman flow: what it sends, what it must answer, and how it waits."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Poll:
    """Repeat a request, one second apart, while `body.<field>` is one of `waiting` (bounded)."""

    field: str
    waiting: tuple[str, ...]
    final: str
    max_polls: int = 180


@dataclass(frozen=True)
class Step:
    """One request of the flow: which operation, what it sends, what it must answer."""

    name: str
    method: str
    path: str
    status: int
    checks: tuple[tuple[str, str], ...] = ()
    capture: dict[str, str] = field(default_factory=dict)
    accept: str | None = None
    body: Any = None
    files: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    path_values: dict[str, str] = field(default_factory=dict)
    poll: Poll | None = None
    description: str = ""
