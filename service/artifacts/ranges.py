"""Parse a single-range HTTP Range header (RFC 9110 §14.2)."""

from __future__ import annotations

from service.errors import RangeNotSatisfiable


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """(start, end) inclusive for 'bytes=a-b', 'bytes=a-' or 'bytes=-n'; None to send everything."""
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None  # unknown units and multi-range requests get the whole body, as RFC 9110 allows
    first, _, last = spec.strip().partition("-")
    try:
        if not first:
            length = int(last)
            if length <= 0:
                raise ValueError
            return max(size - length, 0), size - 1
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        return None
    if start >= size or end < start:
        raise RangeNotSatisfiable(
            f"range {header} is outside the {size} bytes", headers={"Content-Range": f"bytes */{size}"}
        )
    return start, min(end, size - 1)
