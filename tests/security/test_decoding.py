"""Every way a request can fail to decode is a 4xx problem document, never a 500."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.chaos.live import drop_tenant
from tests.fixtures.api import new_key

LISTS = ("/v1/models", "/v1/datasets", "/v1/jobs")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()


HOSTILE_CURSORS = {
    "nested JSON, 20,000 deep": _b64(b"[" * 20_000 + b"]" * 20_000),
    "nested JSON, 900 deep": _b64(b"[" * 900 + b"]" * 900),
    "nested objects": _b64(b'{"a":' * 5000 + b"1" + b"}" * 5000),
    "an object": _b64(b'{"created": "2026-01-01T00:00:00+00:00"}'),
    "numbers": _b64(b"[1, 2]"),
    "three strings": _b64(b'["a", "b", "c"]'),
    "a bad date": _b64(b'["yesterday", "0b3c9b1e-7c1d-4d6a-9f1e-2a4b6c8d0e1f"]'),
    "a bad id": _b64(b'["2026-01-01T00:00:00+00:00", "not-an-id"]'),
    "a huge number": _b64(b"[" + b"9" * 5000 + b"]"),
    "not base64": "%%%not-base64%%%",
    "non-ASCII": "curseur-é",
    "bad padding": "YWJj=ZA",
    "not UTF-8": _b64(b"\xff\xfe\x00["),
    "a long one": "A" * 60_000,
}


@pytest.fixture(scope="module")
def headers(app_client: TestClient) -> Iterator[dict[str, str]]:
    key = new_key()
    yield {"Authorization": f"Bearer {key}"}
    drop_tenant(key)


def _assert_problem(response: object, status: int | None = None) -> dict[str, object]:
    code = response.status_code  # type: ignore[attr-defined]
    assert 400 <= code < 500, (code, response.text[:300])  # type: ignore[attr-defined]
    if status is not None:
        assert code == status, response.text[:300]  # type: ignore[attr-defined]
    assert response.headers["content-type"] == "application/problem+json"  # type: ignore[attr-defined]
    body: dict[str, object] = response.json()  # type: ignore[attr-defined]
    assert body["status"] == code and body["detail"]
    return body


@pytest.mark.parametrize("name", sorted(HOSTILE_CURSORS))
def test_a_hostile_cursor_is_422_on_every_list(
    app_client: TestClient, headers: dict[str, str], name: str
) -> None:
    for path in LISTS:
        response = app_client.get(path, params={"cursor": HOSTILE_CURSORS[name]}, headers=headers)
        _assert_problem(response, 422)


@pytest.mark.parametrize("length", [71, 257, 300, 5000])
def test_a_long_multipart_boundary_is_422(
    app_client: TestClient, headers: dict[str, str], length: int
) -> None:
    boundary = "b" * length
    part = 'Content-Disposition: form-data; name="file"; filename="x.npz"\r\n\r\nx'
    body = f"--{boundary}\r\n{part}\r\n--{boundary}--\r\n"
    for path in ("/v1/models", "/v1/datasets"):
        response = app_client.post(
            path,
            content=body.encode(),
            headers={**headers, "Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        _assert_problem(response, 422)


@pytest.mark.parametrize(
    "content_type",
    [
        "multipart/form-data; boundary=",
        'multipart/form-data; boundary=""',
        "multipart/form-data; boundary=\x7f\x01",
        "multipart/form-data; charset=utf-8",
        "multipart/form-data; boundary=abc; boundary=" + "d" * 400,
    ],
)
def test_a_broken_multipart_content_type_is_422(
    app_client: TestClient, headers: dict[str, str], content_type: str
) -> None:
    response = app_client.post(
        "/v1/datasets", content=b"--abc\r\n\r\n", headers={**headers, "Content-Type": content_type}
    )
    _assert_problem(response, 422)


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 200_000 + b"]" * 200_000,
        b'{"model_id": ' + b'{"a": ' * 50_000 + b"1" + b"}" * 50_000 + b"}",
        b'{"model_id": "\xff\xfe"}',
        b'{"model_id": NaN, "steps": [{"technique": "quantize.dynamic", "params": {"x": Infinity}}]}',
        b"\x00\x01\x02",
        b"",
    ],
)
def test_an_undecodable_json_body_is_a_4xx_problem(
    app_client: TestClient, headers: dict[str, str], body: bytes
) -> None:
    response = app_client.post(
        "/v1/jobs", content=body, headers={**headers, "Content-Type": "application/json"}
    )
    _assert_problem(response)


def test_thousands_of_bad_keys_give_a_short_answer(app_client: TestClient, headers: dict[str, str]) -> None:
    params = {f"{'k' * 200}{index}": index for index in range(3000)}
    evaluation = {f"e{index}": index for index in range(3000)}
    body = {"model_id": "0b3c9b1e-7c1d-4d6a-9f1e-2a4b6c8d0e1f", "steps": [{"technique": "quantize.dynamic",
            "params": params}], "evaluation": evaluation}  # fmt: skip

    response = app_client.post(
        "/v1/jobs", content=json.dumps(body), headers={**headers, "Content-Type": "application/json"}
    )

    problem = _assert_problem(response, 422)
    assert len(response.content) < 20_000, len(response.content)
    assert problem["error_count"] >= 3000  # type: ignore[operator]


@pytest.mark.parametrize(
    "query",
    [
        "status=%ff%fe",
        "limit=1e999",
        "limit=-1",
        "limit=99999999999999999999999999",
        "model_id=%00",
        "status=" + "x" * 10_000,
        "cursor=%ff",
    ],
)
def test_a_bad_query_string_is_422(app_client: TestClient, headers: dict[str, str], query: str) -> None:
    _assert_problem(app_client.get(f"/v1/jobs?{query}", headers=headers), 422)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("nodes_to_exclude", ["n"] * 5000),
        ("nodes_to_exclude", ["n" * 5000]),
        ("op_types", ["MatMul"] * 300),
    ],
)
def test_request_lists_and_names_are_bounded(
    app_client: TestClient, headers: dict[str, str], field: str, value: list[str]
) -> None:
    body = {"model_id": "0b3c9b1e-7c1d-4d6a-9f1e-2a4b6c8d0e1f", "steps": [{"technique": "quantize.dynamic",
            "params": {field: value}}]}  # fmt: skip

    response = app_client.post("/v1/jobs", json=body, headers=headers)

    problem = _assert_problem(response, 422)
    assert problem["type"] == "https://modelpress.dev/problems/invalid-params", problem
