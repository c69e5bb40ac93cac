"""Generate the Postman v2.1 collection: the newcomer's flow (service.postman_flow) on today's API.

`python -m service.postman > postman/modelpress.postman_collection.json`; a test fails when the
committed file differs from what this produces, so the collection never drifts from the API, and
the generator refuses an OpenAPI operation that has no place in the flow.
"""

from __future__ import annotations

import json
import re
import sys
import uuid
from typing import Any

from service.postman_flow import FLOW, steps
from service.postman_step import Poll, Step

SCHEMA_URL = "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"
NAMESPACE = uuid.UUID("6f1c2f0e-3f7e-4d4e-9a57-6d6f64656c70")
ID_VARIABLES = {
    "model_id": "modelId",
    "dataset_id": "datasetId",
    "job_id": "jobId",
    "artifact_id": "artifactId",
}
FILE_VARIABLES = {"modelFile": "model.onnx", "datasetFile": "eval.npz"}


class FlowDrift(Exception):
    """The API and the flow disagree: an operation without a request, or a request without one."""


def _url(path: str, step: Step, parameters: list[dict[str, Any]]) -> dict[str, Any]:
    segments = [f":{seg[1:-1]}" if seg.startswith("{") else seg for seg in path.strip("/").split("/")]
    url: dict[str, Any] = {"raw": "{{baseUrl}}" + re.sub(r"\{(\w+)\}", r":\1", path), "host": ["{{baseUrl}}"]}
    url["path"] = segments
    query = [p for p in parameters if p["in"] == "query"]
    if query:
        url["query"] = [
            {"key": p["name"], "value": "", "disabled": True, "description": p.get("description", "optional")}
            for p in query
        ]
    names = [p["name"] for p in parameters if p["in"] == "path"]
    if names:
        url["variable"] = [
            {"key": name, "value": step.path_values.get(name, "{{" + ID_VARIABLES[name] + "}}")}
            for name in names
        ]
    return url


def _body(step: Step) -> dict[str, Any] | None:
    if step.body is not None:
        raw = json.dumps(step.body, indent=2)
        return {"mode": "raw", "raw": raw, "options": {"raw": {"language": "json"}}}
    if step.files:
        fields = [{"key": key, "type": "file", "src": src} for key, src in step.files.items()]
        return {"mode": "formdata", "formdata": fields}
    return None


def _poll_lines(poll: Poll) -> list[str]:
    # setNextRequest to the same name repeats it; the timer spaces the polls a second apart.
    waiting = json.dumps(list(poll.waiting))
    return [
        "const polls = Number(pm.collectionVariables.get('polls') || 0);",
        f"if ({waiting}.includes(body.{poll.field}) && polls < {poll.max_polls}) {{",
        "  pm.collectionVariables.set('polls', polls + 1);",
        "  pm.execution.setNextRequest(pm.info.requestName);",
        "  setTimeout(() => {}, 1000);",
        "  return;",
        "}",
        "pm.collectionVariables.set('polls', 0);",
        f"pm.test('{poll.field} is {poll.final}', "
        f"() => pm.expect(body.{poll.field}).to.eql('{poll.final}'));",
    ]


def _test_script(step: Step) -> list[str]:
    lines = [
        "(function () {",
        f"pm.test('status {step.status}', () => pm.response.to.have.status({step.status}));",
    ]
    parses = step.accept in (None, "application/json") and step.status != 204
    if parses:
        lines.append("const body = pm.response.json();")
    if step.poll:
        lines += _poll_lines(step.poll)
    for title, expression in step.checks:
        lines.append(f"pm.test({json.dumps(title)}, () => pm.expect({expression}).to.be.true);")
    for variable, source in step.capture.items():
        lines.append(f"pm.collectionVariables.set('{variable}', body.{source});")
    lines.append("})();")
    return lines


def _operation(openapi: dict[str, Any], step: Step) -> dict[str, Any]:
    operation = openapi["paths"].get(step.path, {}).get(step.method.lower())
    if operation is None:
        raise FlowDrift(
            f"the flow's request {step.name!r} names {step.method} {step.path}, which the API lacks"
        )
    return dict(operation)


def _item(openapi: dict[str, Any], step: Step) -> dict[str, Any]:
    operation = _operation(openapi, step)
    headers = [{"key": key, "value": value} for key, value in step.headers.items()]
    if step.accept:
        headers.append({"key": "Accept", "value": step.accept})
    request: dict[str, Any] = {
        "method": step.method,
        "header": headers,
        "url": _url(step.path, step, operation.get("parameters", [])),
        "description": step.description or operation.get("description") or operation.get("summary", ""),
    }
    body = _body(step)
    if body is not None:
        request["body"] = body
    return {
        "id": str(uuid.uuid5(NAMESPACE, step.name)),
        "name": step.name,
        "request": request,
        "event": [{"listen": "test", "script": {"type": "text/javascript", "exec": _test_script(step)}}],
    }


def _check_coverage(openapi: dict[str, Any]) -> None:
    covered = {(step.method, step.path) for step in steps()}
    missing = [
        f"{method.upper()} {path}"
        for path, operations in openapi["paths"].items()
        for method in operations
        if (method.upper(), path) not in covered
    ]
    if missing:
        raise FlowDrift(f"these operations have no request in service/postman_flow.py: {', '.join(missing)}")


def build_collection(openapi: dict[str, Any], base_url: str = "http://127.0.0.1:8000") -> dict[str, Any]:
    """The collection: the flow's folders in order, bearer auth from {{apiKey}}, the server at {{baseUrl}}."""
    _check_coverage(openapi)
    info = openapi["info"]
    variables = [{"key": "baseUrl", "value": base_url}, {"key": "apiKey", "value": ""}]
    variables += [{"key": name, "value": value} for name, value in FILE_VARIABLES.items()]
    variables += [{"key": name, "value": ""} for name in (*ID_VARIABLES.values(), "cancelJobId", "polls")]
    return {
        "info": {
            "_postman_id": str(uuid.uuid5(NAMESPACE, info["title"])),
            "name": info["title"],
            "description": f"{info.get('description', '')} A flow to run top to bottom: set apiKey, "
            "modelFile and datasetFile, then run the collection; every request asserts its answer. "
            f"Generated from the OpenAPI document (version {info['version']}) "
            "by `python -m service.postman`.",
            "schema": SCHEMA_URL,
        },
        "auth": {"type": "bearer", "bearer": [{"key": "token", "value": "{{apiKey}}", "type": "string"}]},
        "variable": variables,
        "item": [{"name": name, "item": [_item(openapi, step) for step in folder]} for name, folder in FLOW],
    }


def render() -> str:
    """The collection for the current app, as the committed file's text."""
    from service.main import create_app  # the app is built only when generating

    return json.dumps(build_collection(create_app().openapi()), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
