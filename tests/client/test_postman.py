"""The committed Postman collection is what the generator makes from today's OpenAPI document."""

from __future__ import annotations

import json

from service.postman import render
from tests.fixtures.infrastructure import ROOT

COLLECTION = ROOT / "postman" / "modelpress.postman_collection.json"


def test_committed_collection_matches_the_api() -> None:
    assert COLLECTION.read_text() == render(), (
        "the API changed: run `python -m service.postman > postman/modelpress.postman_collection.json`"
    )


def test_collection_is_postman_v21_with_variables_and_bearer_auth() -> None:
    collection = json.loads(render())
    requests = [item for folder in collection["item"] for item in folder["item"]]
    by_name = {item["name"]: item for item in requests}

    assert collection["info"]["schema"].endswith("/v2.1.0/collection.json")
    assert {"baseUrl", "apiKey"} <= {variable["key"] for variable in collection["variable"]}
    assert collection["auth"]["bearer"][0]["value"] == "{{apiKey}}"
    assert all(item["request"]["url"]["raw"].startswith("{{baseUrl}}/") for item in requests)
    job = json.loads(by_name["Create Job"]["request"]["body"]["raw"])
    assert job["model_id"] == "{{modelId}}"
    assert by_name["Get Report (text/html)"]["request"]["header"][-1] == {
        "key": "Accept",
        "value": "text/html",
    }
    assert any("jobId" in line for line in by_name["Create Job"]["event"][0]["script"]["exec"])
