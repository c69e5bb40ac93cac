"""The OpenAPI document as the API really answers: every error is a problem document."""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.openapi.utils import get_openapi

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "An RFC 9457 problem document; some problems add fields (e.g. `errors`).",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
    },
    "additionalProperties": True,
}
_PROBLEM_RESPONSE = {
    "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
}


def allowed_methods(app: FastAPI, path: str) -> list[str]:
    """Every method the document lists for the path template matching `path`, for an Allow header."""
    methods: set[str] = set()
    for template, operations in app.openapi().get("paths", {}).items():
        if re.fullmatch(re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(template)), path):
            methods.update(method.upper() for method in operations)
    return sorted(methods)


def install(app: FastAPI) -> None:
    """Serve the corrected document at /openapi.json, built and serialized once, on first request."""

    def build() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document(app)
        return app.openapi_schema

    @lru_cache(maxsize=1)
    def serialized() -> bytes:
        return json.dumps(build()).encode()

    async def serve(_request: Request) -> Response:
        return Response(serialized(), media_type="application/json")

    app.openapi = build  # type: ignore[method-assign]
    if app.openapi_url:
        # FastAPI's own route serializes the whole document again on every request.
        app.router.routes[:] = [r for r in app.router.routes if getattr(r, "path", None) != app.openapi_url]
        app.add_route(app.openapi_url, serve, include_in_schema=False)


def document(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document with its validation-error schema replaced by the problem document."""
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas["Problem"] = PROBLEM_SCHEMA
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            if "422" in responses:
                responses["422"] = {"description": "The request is not valid", **_PROBLEM_RESPONSE}
            responses["default"] = {"description": "An error, as a problem document", **_PROBLEM_RESPONSE}
    return schema
