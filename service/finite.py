"""JSON has no NaN or infinity: such a figure becomes null, and the caller says so in a warning."""

from __future__ import annotations

import json
import logging
import math
from typing import Any

from fastapi.responses import JSONResponse

log = logging.getLogger("modelpress.api")

MAX_NAMED = 5


def finite_json(value: Any, path: str = "") -> tuple[Any, list[str]]:
    """A copy of a JSON-like value with every non-finite float replaced by None; and where they were."""
    if isinstance(value, float) and not math.isfinite(value):
        return None, [path or "(value)"]
    replaced: list[str] = []
    if isinstance(value, dict):
        copy: dict[Any, Any] = {}
        for key, item in value.items():
            copy[key], found = finite_json(item, f"{path}.{key}" if path else str(key))
            replaced += found
        return copy, replaced
    if isinstance(value, list | tuple):
        items = []
        for index, item in enumerate(value):
            clean, found = finite_json(item, f"{path}[{index}]")
            items.append(clean)
            replaced += found
        return items, replaced
    return value, replaced


def non_finite_warning(paths: list[str]) -> str:
    """The warning that goes with replaced figures, naming the first few."""
    named = ", ".join(paths[:MAX_NAMED]) + (
        f" and {len(paths) - MAX_NAMED} more" if len(paths) > MAX_NAMED else ""
    )
    return (
        f"{len(paths)} figure(s) were not finite numbers (NaN or infinity) and are reported as null: {named}"
    )


class FiniteJSONResponse(JSONResponse):
    """The app's default response: a non-finite figure anywhere is null (and logged), never a 500."""

    def render(self, content: Any) -> bytes:
        """Serialize as strict JSON after replacing non-finite floats."""
        clean, replaced = finite_json(content)
        if replaced:
            log.warning("non-finite figures answered as null: %s", ", ".join(replaced[:MAX_NAMED]))
        return json.dumps(clean, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")
