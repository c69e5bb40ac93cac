"""A model's code that reads files outside its sandbox is refused the read, and nothing it read
(or any server path) reaches a response: model document, job document or report.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.settings import get_settings
from tests.figures import record
from tests.fixtures.api import Api, new_key
from tests.security.file_readers import pt2_reader, routes_to, torchscript_reader
from worker.sandbox import SandboxLimits, run_sandboxed
from worker.sandbox.layers import active_layers

LIMITS = SandboxLimits(memory_bytes=1024**3, wall_seconds=60)


@pytest.fixture(scope="module")
def canaries(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, str]]:
    """Secret files in the service's data home (beside its database and store) and elsewhere."""
    home = get_settings().home
    home.mkdir(parents=True, exist_ok=True)
    placed = {}
    for label, folder in {"data home": home, "elsewhere": tmp_path_factory.mktemp("outside")}.items():
        secret = f"CANARY-{uuid.uuid4().hex}"
        path = folder / f"secret-{uuid.uuid4().hex[:8]}.txt"
        path.write_text(secret)
        placed[label] = (path, secret)
    return placed


def test_a_sandboxed_child_cannot_open_files_outside_its_box(canaries: dict[str, tuple[Path, str]]) -> None:
    outcomes = {}
    for label, (path, secret) in canaries.items():
        for route, name in routes_to(path).items():
            outcome = run_sandboxed("tests.security.sandbox_probes:read_file", {"path": name}, limits=LIMITS)
            assert secret not in outcome, (label, route)
            assert outcome.startswith("refused: "), (label, route, outcome)
            outcomes[f"{label}, {route}"] = outcome
    parent_environ = run_sandboxed(
        "tests.security.sandbox_probes:read_file", {"path": f"/proc/{os.getpid()}/environ"}, limits=LIMITS
    )
    own_environ = run_sandboxed(
        "tests.security.sandbox_probes:read_file", {"path": "/proc/self/environ"}, limits=LIMITS
    )

    assert parent_environ.startswith("refused: ") and "MODELPRESS_" not in parent_environ
    assert "MODELPRESS_" not in own_environ
    assert all(outcome == "refused: PermissionError" for outcome in outcomes.values()), outcomes
    record("sandbox_file_reads", {"layers": active_layers().describe(), **outcomes})


@pytest.fixture(scope="module")
def tenant(app_client: TestClient, worker: Any) -> Api:
    """A tenant of its own, with the session's worker running ingest."""
    return Api(app_client, new_key())


def _hostile_models(canaries: dict[str, tuple[Path, str]], folder: Path) -> list[tuple[str, str, bytes]]:
    models = []
    for label, (path, secret) in canaries.items():
        for route, name in routes_to(path).items():
            if label == "elsewhere" and route != "absolute path":
                continue  # the /proc routes are the same for both places; one set keeps the test quick
            models.append(
                (f"TorchScript, {label}, {route}", "reader.pt", torchscript_reader(name, len(secret), folder))
            )
        models.append(
            (f".pt2, {label}", "reader.pt2", pt2_reader(routes_to(path)["via /proc/self/cwd"], len(secret)))
        )
    models.append(
        (
            "TorchScript, /proc/self/environ",
            "environ.pt",
            torchscript_reader("/proc/self/environ", 64, folder),
        )
    )
    return models


def test_models_that_read_files_learn_nothing_and_tell_nothing(
    tenant: Api, canaries: dict[str, tuple[Path, str]], tmp_path: Path
) -> None:
    secrets = [secret for _, secret in canaries.values()]
    forbidden = [*secrets, str(get_settings().home.resolve()), "MODELPRESS_DATABASE_URL"]
    outcomes = {}
    for label, filename, content in _hostile_models(canaries, tmp_path):
        uploaded = tenant.post("/v1/models", files={"file": (filename, content)})
        assert uploaded.status_code == 201, uploaded.text
        model = tenant.wait_model(uploaded.json()["id"])
        job = tenant.post(
            "/v1/jobs", json={"model_id": model["id"], "steps": [{"technique": "quantize.dynamic"}]}
        )
        documents = [uploaded.json(), model, job.json()]
        if job.status_code == 202:  # a model that was not rejected: its job and report are responses too
            documents.append(finished := tenant.wait_job(job.json()["id"]))
            documents.append(tenant.get(f"/v1/jobs/{finished['id']}/report").text)
        else:
            assert job.status_code == 409 and model["status"] == "rejected", job.text
        responses = json.dumps(documents)
        leaked = [text for text in forbidden if text in responses]
        assert not leaked, (label, leaked, model)
        outcomes[label] = f"model {model['status']}: {(model.get('error') or {}).get('detail')}"
    record("model_file_reads", outcomes)
