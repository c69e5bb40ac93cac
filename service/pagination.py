"""Opaque cursor pagination over (created_at, id), newest first."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel
from sqlalchemy import Select, and_, or_

from service.errors import InvalidRequest

T = TypeVar("T")

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MAX_CURSOR_CHARS = 256


class Page(BaseModel, Generic[T]):
    """A page of items and the cursor of the next page (null on the last one)."""

    items: list[T]
    next_cursor: str | None


def encode_opaque(value: Any) -> str:
    """A JSON value as an opaque, URL-safe cursor."""
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


def decode_opaque(cursor: str, invalid: InvalidRequest, max_chars: int = MAX_CURSOR_CHARS) -> Any:
    """Inverse of encode_opaque; anything that does not decode raises `invalid` (the client's error)."""
    # Checked before decoding: a real cursor is ~120 characters, and a long one could nest JSON deep.
    if len(cursor) > max_chars:
        raise invalid
    try:
        return json.loads(base64.urlsafe_b64decode(cursor.encode("ascii")))
    except (ValueError, TypeError, RecursionError):
        raise invalid from None


def encode_cursor(created_at: datetime, item_id: uuid.UUID) -> str:
    """An opaque cursor pointing after this item."""
    return encode_opaque([created_at.isoformat(), str(item_id)])


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """Inverse of encode_cursor; a malformed cursor, whatever it holds, is the client's error."""
    invalid = InvalidRequest("the cursor is not valid; use next_cursor from a previous page")
    decoded = decode_opaque(cursor, invalid)
    if not (isinstance(decoded, list) and len(decoded) == 2 and all(isinstance(v, str) for v in decoded)):
        raise invalid
    try:
        return datetime.fromisoformat(decoded[0]), uuid.UUID(decoded[1])
    except ValueError:
        raise invalid from None


def paginate(statement: Select[Any], model: Any, cursor: str | None, limit: int) -> Select[Any]:
    """Order newest first and apply the cursor and limit (one extra row tells if more exist)."""
    statement = statement.order_by(model.created_at.desc(), model.id.desc())
    if cursor:
        created_at, item_id = decode_cursor(cursor)
        statement = statement.where(
            or_(model.created_at < created_at, and_(model.created_at == created_at, model.id < item_id))
        )
    return statement.limit(limit + 1)


def page_of(rows: list[Any], limit: int, convert: Any) -> dict[str, Any]:
    """Build the page body from up to limit+1 rows."""
    more = len(rows) > limit
    rows = rows[:limit]
    cursor = encode_cursor(rows[-1].created_at, rows[-1].id) if more and rows else None
    return {"items": [convert(row) for row in rows], "next_cursor": cursor}
