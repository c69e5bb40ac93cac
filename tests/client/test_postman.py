"""The committed Postman collection is today's flow, and newman runs it green against a live server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from service.postman import FlowDrift, build_collection, render
from service.postman_flow import steps
from service.postman_step import Step
from tests.client.conftest import LiveServer
from tests.fixtures.api import new_key
from tests.fixtures.infrastructure import ROOT

COLLECTION = ROOT / "postman" / "modelpress.postman_collection.json"
NEWMAN_HINT = "newman is missing: `npm install --prefix /opt/newman newman@6.2.2` (.ci/run does this)"


def newman_command() -> list[str]:
    """newman from $NEWMAN, the PATH, or the prefix .ci/run installs it into."""
    for candidate in (
        os.environ.get("NEWMAN"),
        shutil.which("newman"),
        "/opt/newman/node_modules/.bin/newman",
    ):
        if candidate and Path(candidate).is_file():
            return [candidate]
    raise AssertionError(NEWMAN_HINT)


def test_committed_collection_matches_the_api() -> None:
    assert COLLECTION.read_text() == render(), (
        "the API changed: run `python -m service.postman > postman/modelpress.postman_collection.json`"
    )


def test_every_request_asserts_its_status_and_the_flow_is_ordered() -> None:
    collection = json.loads(render())
    folders = [folder["name"] for folder in collection["item"]]
    requests = [item for folder in collection["item"] for item in folder["item"]]
    names = [item["name"] for item in requests]

    assert {"baseUrl", "apiKey", "modelFile", "datasetFile"} <= {v["key"] for v in collection["variable"]}
    assert collection["auth"]["bearer"][0]["value"] == "{{apiKey}}"
    assert folders[-1].startswith("4. Destructive")
    assert (
        names.index("Create job") > names.index("Upload model")
        and names.index("Delete model") == len(names) - 1
    )
    assert names.index("Rotate webhook secret") > names.index("Get webhook secret")
    for item in requests:
        script = "\n".join(item["event"][0]["script"]["exec"])
        assert "pm.response.to.have.status(" in script, item["name"]
    upload = next(item for item in requests if item["name"] == "Upload model")
    assert upload["request"]["body"]["formdata"][0]["src"] == "{{modelFile}}"


def test_an_operation_without_a_request_is_refused() -> None:
    openapi = {"info": {"title": "t", "version": "1"}, "paths": {"/v1/new": {"get": {}}}}
    with pytest.raises(FlowDrift, match="GET /v1/new"):
        build_collection(openapi)


def test_a_request_for_a_missing_operation_is_refused() -> None:
    from service.postman import _item

    with pytest.raises(FlowDrift, match="lacks"):
        _item({"paths": {}}, Step("Gone", "GET", "/v1/gone", 200))


def test_newman_runs_the_flow_with_every_assertion_passing(
    live_server: LiveServer, mlp_onnx: Path, digits_npz: Path, tmp_path: Path
) -> None:
    shutil.copy(mlp_onnx, tmp_path / "model.onnx")
    shutil.copy(digits_npz, tmp_path / "eval.npz")
    report = tmp_path / "newman.json"
    command = newman_command() + [
        "run", str(COLLECTION), "--working-dir", str(tmp_path),
        "--env-var", f"baseUrl={live_server.url}", "--env-var", f"apiKey={new_key()}",
        "--reporters", "cli,json", "--reporter-json-export", str(report), "--timeout-request", "30000",
    ]  # fmt: skip
    run = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)

    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    stats = json.loads(report.read_text())["run"]["stats"]
    assert stats["assertions"]["failed"] == 0
    # Each request asserts at least its status; the polls add more.
    assert stats["assertions"]["total"] >= 2 * len(steps())
    assert stats["requests"]["failed"] == 0
