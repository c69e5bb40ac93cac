"""The Python SDK (modelpress.Client and AsyncClient) against the live server, worker, Postgres and Redis."""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from modelpress import (
    AsyncClient,
    Client,
    ConnectionProblem,
    Dataset,
    Event,
    Job,
    LogLine,
    Model,
    ProblemError,
    Report,
)
from modelpress.events import EventDecoder, apply
from tests.client.conftest import LiveServer, free_port
from tests.fixtures.api import new_key
from tests.fixtures.infrastructure import ROOT

PROBLEMS = "https://modelpress.dev/problems/"


def job_request(ready_model: dict[str, Any], digits_dataset: dict[str, Any]) -> dict[str, Any]:
    return {
        "steps": [{"technique": "prune.magnitude", "params": {"sparsity": 0.5}}, "quantize.dynamic"],
        "evaluation": {"dataset_id": digits_dataset["id"], "metric": "top1", "batch_sizes": [1]},
    }


def test_upload_submit_wait_with_progress_report_download_and_logs(
    live_server: LiveServer, tenant_key: str, mlp_onnx: Path, digits_npz: Path, tmp_path: Path
) -> None:
    seen: list[Job] = []
    key = f"sdk-{uuid.uuid4()}"
    with Client(live_server.url, tenant_key) as mp:
        model = mp.wait_model(mp.upload_model(mlp_onnx, name="sdk-mlp").id, timeout=120)
        dataset = mp.upload_dataset(digits_npz)
        request = job_request(model.raw, dataset.raw)
        job = mp.submit_job(model.id, request["steps"], evaluation=request["evaluation"], idempotency_key=key)
        replayed = mp.submit_job(
            model.id, request["steps"], evaluation=request["evaluation"], idempotency_key=key
        )
        finished = mp.wait(job.id, on_progress=seen.append, timeout=180)
        report = mp.report(job.id)
        saved = mp.download(finished.artifact_id or "", tmp_path / "small.onnx")
        artifact = mp.get_artifact(finished.artifact_id or "")
        lines = list(mp.logs(job.id, page_size=2))
        step_lines = list(mp.logs(job.id, step=1))
        with pytest.raises(ProblemError) as reused:
            mp.submit_job(model.id, ["quantize.fp16"], idempotency_key=key)

    assert (
        isinstance(model, Model) and model.status == "ready" and model.parameters and model.name == "sdk-mlp"
    )
    assert isinstance(dataset, Dataset) and dataset.samples > 0 and "labels" in dataset.arrays
    assert replayed.id == job.id and job.status in ("queued", "running")
    assert finished.status == "succeeded" and finished.finished
    assert [step.status for step in finished.steps] == ["succeeded", "succeeded"]
    assert finished.steps[0].params["sparsity"] == 0.5 and finished.steps[1].technique == "quantize.dynamic"
    assert seen[-1] == finished and len(seen) >= 3  # the first document, changes from the events, the end
    assert [job.progress for job in seen] == sorted(job.progress for job in seen)
    assert isinstance(report, Report) and report.job_id == job.id and report.verdict["smaller"] is True
    assert report.comparison == finished.comparison
    assert (
        saved.sha256 == artifact.sha256 == hashlib.sha256((tmp_path / "small.onnx").read_bytes()).hexdigest()
    )
    assert saved.size_bytes == artifact.size_bytes
    assert all(isinstance(line, LogLine) for line in lines) and [line.seq for line in lines] == list(
        range(len(lines))
    )
    assert lines[-1].message == "job succeeded" and step_lines == [line for line in lines if line.step == 1]
    assert reused.value.status == 422 and reused.value.slug == "idempotency-key-reused"
    assert reused.value.extensions["job_id"] == job.id


def test_wait_polls_where_events_are_not_used(
    client: Client, ready_model: dict[str, Any], digits_dataset: dict[str, Any]
) -> None:
    seen: list[str] = []
    job = client.submit_job(ready_model["id"], ["quantize.dynamic"], evaluation={"batch_sizes": [1]})

    finished = client.wait(
        job.id, on_progress=lambda j: seen.append(j.status), interval=0.2, use_events=False
    )

    assert finished.status == "succeeded" and seen[-1] == "succeeded"


def test_wait_returns_the_unfinished_job_at_its_timeout(client: Client, ready_model: dict[str, Any]) -> None:
    job = client.submit_job(ready_model["id"], ["quantize.dynamic"], evaluation={"batch_sizes": [1]})

    early = client.wait(job.id, timeout=0.0)
    client.wait(job.id, timeout=180)

    assert early.id == job.id and not early.finished


def test_download_never_overwrites_unless_asked(
    client: Client, finished_job: dict[str, Any], tmp_path: Path
) -> None:
    target = tmp_path / "model.onnx"
    target.write_bytes(b"the user's own model")

    with pytest.raises(FileExistsError, match="overwrite=True"):
        client.download(finished_job["artifact_id"], target)
    kept = target.read_bytes()
    replaced = client.download(finished_job["artifact_id"], target, overwrite=True)

    assert kept == b"the user's own model"
    assert hashlib.sha256(target.read_bytes()).hexdigest() == replaced.sha256
    assert sorted(path.name for path in tmp_path.iterdir()) == ["model.onnx"]  # no temporary file left


def test_errors_are_problem_errors_with_the_rfc_9457_fields(
    live_server: LiveServer, client: Client, tmp_path: Path
) -> None:
    missing = str(uuid.uuid4())
    with pytest.raises(ProblemError) as not_found:
        client.get_job(missing)
    with pytest.raises(ProblemError) as invalid:
        client.submit_job(missing, ["quantize.magic"])
    with pytest.raises(ProblemError) as bad_cursor:
        client.log_page(missing, cursor="???")
    with pytest.raises(ProblemError) as unauthorized, Client(live_server.url, "mp_not-a-key") as stranger:
        stranger.list_jobs()
    with (
        pytest.raises(ConnectionProblem) as down,
        Client(f"http://127.0.0.1:{free_port()}", "mp_x") as nobody,
    ):
        nobody.get_job(missing)
    with pytest.raises(ProblemError) as no_artifact:
        client.download(missing, tmp_path / "never.onnx")

    assert not_found.value.status == 404 and not_found.value.type == PROBLEMS + "not-found"
    assert not_found.value.title and missing in not_found.value.detail
    assert invalid.value.status == 422 and invalid.value.slug == "unknown-technique"
    assert bad_cursor.value.status == 404  # an unknown job is checked before its cursor
    assert unauthorized.value.status == 401
    assert down.value.status == 0 and down.value.title == "Cannot reach the server"
    assert no_artifact.value.status == 404 and not (tmp_path / "never.onnx").exists()
    assert list(tmp_path.iterdir()) == []


def test_a_bad_logs_cursor_is_a_validation_problem(client: Client, finished_job: dict[str, Any]) -> None:
    with pytest.raises(ProblemError) as error:
        client.log_page(finished_job["id"], cursor="not-a-cursor")

    assert error.value.status == 422 and error.value.slug == "validation-error"
    assert "cursor" in error.value.detail


def test_async_client_does_the_same_flow(
    live_server: LiveServer,
    tenant_key: str,
    ready_model: dict[str, Any],
    digits_dataset: dict[str, Any],
    tmp_path: Path,
) -> None:
    async def flow() -> dict[str, Any]:
        seen: list[float] = []

        async def on_progress(job: Job) -> None:
            seen.append(job.progress)

        async with AsyncClient(live_server.url, tenant_key) as mp:
            request = job_request(ready_model, digits_dataset)
            model = await mp.get_model(ready_model["id"])
            job = await mp.submit_job(model.id, request["steps"], evaluation=request["evaluation"])
            finished = await mp.wait(job.id, on_progress=on_progress, timeout=180)
            report = await mp.report(job.id)
            saved = await mp.download(finished.artifact_id or "", tmp_path / "async.onnx")
            lines = [line async for line in mp.logs(job.id, page_size=3)]
            page = await mp.list_jobs(limit=5)
            events = [event async for event in mp.events(job.id)]
            with pytest.raises(ProblemError) as missing:
                await mp.get_job(str(uuid.uuid4()))
        return {
            "seen": seen,
            "job": job,
            "finished": finished,
            "report": report,
            "saved": saved,
            "lines": lines,
            "page": page,
            "events": events,
            "problem": missing.value,
        }

    result = asyncio.run(flow())

    assert result["finished"].status == "succeeded" and result["seen"][-1] == 1.0
    assert result["report"].comparison == result["finished"].comparison
    assert result["saved"].sha256 == hashlib.sha256((tmp_path / "async.onnx").read_bytes()).hexdigest()
    assert result["lines"][-1].message == "job succeeded" and result["lines"][0].seq == 0
    assert result["job"].id in [job.id for job in result["page"].items]
    assert [event.name for event in result["events"]] == ["job", "end"]  # a finished job's stream
    assert result["problem"].status == 404


def test_event_decoder_reads_the_stream_format() -> None:
    decoder = EventDecoder()
    stream = [
        ": keep-alive",
        "",
        "id: 1",
        "event: progress",
        'data: {"progress": 0.5,',
        'data: "stage": "x"}',
        "",
    ]

    events = [event for line in stream if (event := decoder.feed(line)) is not None]
    job = {
        "progress": 0.1,
        "stage": "queued",
        "status": "running",
        "steps": [{"index": 0, "status": "queued"}],
    }
    stepped = apply(job, Event("step", {"index": 0, "status": "succeeded"}))

    assert events == [Event("progress", {"progress": 0.5, "stage": "x"})]
    assert apply(job, events[0]) == {**job, "progress": 0.5, "stage": "x"}
    assert stepped["steps"] == [{"index": 0, "status": "succeeded"}] and job["steps"][0]["status"] == "queued"


def test_the_sdk_imports_httpx_and_nothing_of_the_service() -> None:
    code = "import sys, json, modelpress; print(json.dumps(sorted(sys.modules)))"
    loaded = json.loads(
        subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, check=True).stdout
    )
    roots = {name.split(".")[0] for name in loaded}

    assert "httpx" in roots
    # (rich may load: httpx imports its own command line when rich is installed.)
    server_side = {"service", "worker", "fastapi", "starlette", "sqlalchemy", "pydantic", "celery", "torch"}
    assert not roots & server_side


def readme_sdk_examples() -> list[str]:
    """The ```python blocks of the README's "Python SDK" section, in order."""
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Python SDK\n", 1)[1].split("\n## ", 1)[0]
    return [block.split("```", 1)[0] for block in section.split("```python\n")[1:]]


def test_the_readme_sdk_examples_run(
    live_server: LiveServer, mlp_onnx: Path, digits_npz: Path, tmp_path: Path
) -> None:
    (tmp_path / "model.onnx").write_bytes(mlp_onnx.read_bytes())
    (tmp_path / "eval.npz").write_bytes(digits_npz.read_bytes())
    env = {"MODELPRESS_URL": live_server.url, "MODELPRESS_API_KEY": new_key(), "PATH": "/usr/bin:/bin"}
    env["PYTHONPATH"] = str(ROOT)
    examples = readme_sdk_examples()

    runs = [
        subprocess.run(
            [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
        )
        for code in examples
    ]

    assert len(examples) == 2
    assert [run.returncode for run in runs] == [0, 0], [run.stderr[-3000:] for run in runs]
    job_id = next(path.stem for path in tmp_path.glob("*.onnx") if path.name not in ("model.onnx",))
    assert "100% done" in runs[0].stdout and "'smaller': True" in runs[0].stdout
    assert (
        "job succeeded" in runs[0].stdout
        and "404 https://modelpress.dev/problems/not-found" in runs[0].stdout
    )
    assert f"{job_id} info quantize.dynamic started" in runs[1].stdout
