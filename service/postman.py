"""Generate the Postman v2.1 collection from the app's OpenAPI document.

`python -m service.postman > postman/modelpress.postman_collection.json`; a test fails when the
committed file differs from what this produces, so the collection never drifts from the API.
"""

from __future__ import annotations

import json
import re
import sys
import uuid
from typing import Any

SCHEMA_URL = "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"
NAMESPACE = uuid.UUID("6f1c2f0e-3f7e-4d4e-9a57-6d6f64656c70")
ID_VARIABLES = {
    "model_id": "modelId",
    "dataset_id": "datasetId",
    "job_id": "jobId",
    "artifact_id": "artifactId",
}
# Chain requests for a newcomer: what a response teaches the next request.
CAPTURES = {
    ("POST", "/v1/models"): {"modelId": "id"},
    ("POST", "/v1/datasets"): {"datasetId": "id"},
    ("POST", "/v1/jobs"): {"jobId": "id"},
    ("GET", "/v1/jobs/{job_id}"): {"artifactId": "artifact_id"},
}


def _camel(name: str) -> str:
    return ID_VARIABLES.get(name) or re.sub(r"_(\w)", lambda m: m.group(1).upper(), name)


def _resolve(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = components[schema["$ref"].rsplit("/", 1)[1]]
    return schema


def example(schema: dict[str, Any], components: dict[str, Any], name: str = "") -> Any:
    """A small example value: required fields, plus optional ones that declare examples."""
    schema = _resolve(schema, components)
    if name in ID_VARIABLES:
        return "{{" + ID_VARIABLES[name] + "}}"
    if "examples" in schema:
        return schema["examples"][0]
    if "anyOf" in schema:
        return example(next(s for s in schema["anyOf"] if s.get("type") != "null"), components, name)
    kind = schema.get("type")
    if kind == "object":
        properties = schema.get("properties", {})
        keep = [
            key
            for key, sub in properties.items()
            if key in schema.get("required", []) or "examples" in _resolve(sub, components)
        ]
        return {key: example(properties[key], components, key) for key in keep}
    if kind == "array":
        return [example(schema.get("items", {}), components)]
    defaults = {"string": "", "integer": 1, "number": 0.0, "boolean": False}
    return schema.get("default", defaults.get(str(kind)))


def _url(path: str, parameters: list[dict[str, Any]]) -> dict[str, Any]:
    segments = [f":{seg[1:-1]}" if seg.startswith("{") else seg for seg in path.strip("/").split("/")]
    url: dict[str, Any] = {"raw": "{{baseUrl}}" + re.sub(r"\{(\w+)\}", r":\1", path), "host": ["{{baseUrl}}"]}
    url["path"] = segments
    query = [p for p in parameters if p["in"] == "query"]
    if query:
        url["query"] = [
            {"key": p["name"], "value": "", "disabled": True, "description": p.get("description", "optional")}
            for p in query
        ]
    variables = [p for p in parameters if p["in"] == "path"]
    if variables:
        url["variable"] = [{"key": p["name"], "value": "{{" + _camel(p["name"]) + "}}"} for p in variables]
    return url


def _body(operation: dict[str, Any], components: dict[str, Any]) -> dict[str, Any] | None:
    content = operation.get("requestBody", {}).get("content", {})
    if "application/json" in content:
        value = example(content["application/json"]["schema"], components)
        return {"mode": "raw", "raw": json.dumps(value, indent=2), "options": {"raw": {"language": "json"}}}
    if "multipart/form-data" in content:
        schema = _resolve(content["multipart/form-data"]["schema"], components)
        required = schema.get("required", [])
        fields = []
        for key, sub in schema.get("properties", {}).items():
            field: dict[str, Any] = {"key": key, "type": "file" if sub.get("format") == "binary" else "text"}
            field.update({"src": ""} if field["type"] == "file" else {"value": ""})
            if key not in required:
                field["disabled"] = True
            if sub.get("description"):
                field["description"] = sub["description"]
            fields.append(field)
        return {"mode": "formdata", "formdata": fields}
    return None


def _capture_script(method: str, path: str) -> list[dict[str, Any]]:
    captures = CAPTURES.get((method, path))
    if not captures:
        return []
    lines = ["if (pm.response.code < 300) {", "  const body = pm.response.json();"]
    for variable, field in captures.items():
        lines.append(f'  if (body.{field}) pm.collectionVariables.set("{variable}", body.{field});')
    lines.append("}")
    return [{"listen": "test", "script": {"type": "text/javascript", "exec": lines}}]


def _requests(method: str, path: str, operation: dict[str, Any], components: dict[str, Any]) -> list[Any]:
    parameters = operation.get("parameters", [])
    headers = [
        {"key": p["name"], "value": "", "disabled": True, "description": p.get("description", "optional")}
        for p in parameters
        if p["in"] == "header"
    ]
    responses: dict[str, Any] = operation.get("responses", {})
    ok: dict[str, Any] = next((r for code, r in responses.items() if code.startswith("2")), {})
    media_types = list(ok.get("content", {})) or [None]
    items = []
    for media_type in media_types if len(media_types) > 1 else [None]:
        request: dict[str, Any] = {"method": method, "header": list(headers), "url": _url(path, parameters)}
        if media_type:
            request["header"].append({"key": "Accept", "value": media_type})
        body = _body(operation, components)
        if body is not None:
            request["body"] = body
        if operation.get("description") or operation.get("summary"):
            request["description"] = operation.get("description") or operation["summary"]
        name = operation.get("summary") or f"{method} {path}"
        item = {
            "id": str(uuid.uuid5(NAMESPACE, f"{method} {path} {media_type}")),
            "name": f"{name} ({media_type})" if media_type else name,
            "request": request,
            "event": _capture_script(method, path),
        }
        items.append(item)
    return items


def build_collection(openapi: dict[str, Any], base_url: str = "http://127.0.0.1:8000") -> dict[str, Any]:
    """The collection: one folder per tag, bearer auth from {{apiKey}}, {{baseUrl}} for the server."""
    components = openapi.get("components", {}).get("schemas", {})
    folders: dict[str, list[Any]] = {}
    for path, operations in openapi["paths"].items():
        for method, operation in operations.items():
            tag = (operation.get("tags") or ["other"])[0]
            folders.setdefault(tag, []).extend(_requests(method.upper(), path, operation, components))
    info = openapi["info"]
    variables = [{"key": "baseUrl", "value": base_url}, {"key": "apiKey", "value": ""}]
    variables += [{"key": name, "value": ""} for name in ID_VARIABLES.values()]
    return {
        "info": {
            "_postman_id": str(uuid.uuid5(NAMESPACE, info["title"])),
            "name": info["title"],
            "description": f"{info.get('description', '')} Generated from the OpenAPI document "
            f"(version {info['version']}) by `python -m service.postman`; set apiKey first.",
            "schema": SCHEMA_URL,
        },
        "auth": {"type": "bearer", "bearer": [{"key": "token", "value": "{{apiKey}}", "type": "string"}]},
        "variable": variables,
        "item": [{"name": tag, "item": items} for tag, items in folders.items()],
    }


def render() -> str:
    """The collection for the current app, as the committed file's text."""
    from service.main import create_app  # the app is built only when generating

    return json.dumps(build_collection(create_app().openapi()), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
