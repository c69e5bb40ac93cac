"""Parse `--step technique:key=value,key=value`; values are JSON when they parse, else strings."""

from __future__ import annotations

import json
from typing import Any


class StepSyntaxError(ValueError):
    """A --step value that cannot be read."""


def parse_value(raw: str) -> Any:
    """`true` -> True, `3` -> 3, `0.5` -> 0.5, `["a","b"]` -> list, `"x"` -> 'x', `abc` -> 'abc'."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def split_top_level(text: str, separator: str = ",") -> list[str]:
    """Split on separators outside brackets, braces and double quotes (so JSON lists survive)."""
    parts: list[str] = []
    current: list[str] = []
    depth, quoted, escaped = 0, False, False
    for char in text:
        if quoted:
            escaped = char == "\\" and not escaped
            quoted = not (char == '"' and not escaped)
        elif char == '"':
            quoted = True
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        elif char == separator and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    if quoted or depth != 0:
        raise StepSyntaxError(f"unbalanced quotes or brackets in {text!r}")
    parts.append("".join(current))
    return parts


def parse_step(spec: str) -> dict[str, Any]:
    """`quantize.dynamic:per_channel=true` -> {"technique": "quantize.dynamic", "params": {...}}."""
    technique, _, rest = spec.partition(":")
    technique = technique.strip()
    if not technique:
        raise StepSyntaxError(f"{spec!r}: expected TECHNIQUE[:key=value,...]")
    params: dict[str, Any] = {}
    for item in split_top_level(rest) if rest.strip() else []:
        key, equals, raw = item.partition("=")
        if not equals or not key.strip():
            raise StepSyntaxError(f"{spec!r}: parameter {item!r} is not key=value")
        params[key.strip()] = parse_value(raw.strip())
    return {"technique": technique, "params": params}


def parse_batch_sizes(text: str) -> list[int]:
    """`1,8,32` -> [1, 8, 32]."""
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise StepSyntaxError(f"batch sizes must be integers separated by commas, not {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise StepSyntaxError(f"batch sizes must be positive, not {text!r}")
    return sizes
