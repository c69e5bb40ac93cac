"""GET /v1/techniques: the technique catalog with each parameter JSON Schema (no authentication)."""

from __future__ import annotations

import json
from functools import lru_cache

from fastapi import APIRouter, Response

from service.catalog import CATALOG

router = APIRouter(tags=["techniques"])

_JSON_OBJECT = {"content": {"application/json": {"schema": {"type": "object"}}}}


@lru_cache(maxsize=1)
def catalog_body() -> bytes:
    """The catalog document, built once: it changes only with the code."""
    return json.dumps({"items": [spec.describe() for spec in CATALOG.values()]}).encode()


@router.get(
    "/v1/techniques", responses={200: {"description": "The catalog", **_JSON_OBJECT}}, response_class=Response
)
async def list_techniques() -> Response:
    """The technique catalog with each technique's parameter JSON Schema."""
    return Response(catalog_body(), media_type="application/json")
