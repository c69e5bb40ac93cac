"""The `modelpress` client commands against a real server, worker, Postgres and Redis."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from modelpress import Client
from service.cli.main import app
from service.report.tables import number
from tests.client.conftest import LiveServer, free_port

runner = CliRunner()


def cli(server: LiveServer, key: str, *args: str) -> Result:
    """Run the console script's app with the server and key taken from the environment."""
    env = {"MODELPRESS_URL": server.url, "MODELPRESS_API_KEY": key}
    return runner.invoke(app, list(args), env=env)


def test_upload_compress_wait_report_download(
    live_server: LiveServer, tenant_key: str, mlp_onnx: Path, digits_npz: Path, tmp_path: Path
) -> None:
    model = json.loads(cli(live_server, tenant_key, "upload", str(mlp_onnx), "--wait", "--json").stdout)
    dataset = json.loads(cli(live_server, tenant_key, "dataset", str(digits_npz), "--json").stdout)

    waited = cli(
        live_server,
        tenant_key,
        "compress",
        model["id"],
        "--step",
        "quantize.dynamic:per_channel=true",
        "--eval-dataset",
        dataset["id"],
        "--metric",
        "top1",
        "--max-accuracy-drop",
        "0.05",
        "--batch-sizes",
        "1,8",
        "--wait",
        "--interval",
        "0.2",
    )

    assert waited.exit_code == 0, waited.output
    job_id = waited.stdout.split("modelpress download ")[1].split()[0]
    with Client(live_server.url, tenant_key) as client:
        job = client.get_job(job_id).raw
    assert job["status"] == "succeeded"
    assert job["steps"][0]["params"]["per_channel"] is True
    assert "100%" in waited.stderr and "done" in waited.stderr  # the progress bar's last frame
    assert "Original vs compressed" in waited.stdout and "Verdict" in waited.stdout
    for side in ("baseline", "candidate"):
        assert number(job["comparison"][side]["latency_ms"]["8"]["p50"]) in waited.stdout
    assert number(job["comparison"]["baseline"]["accuracy"]["top1"], 4) in waited.stdout

    listed = cli(live_server, tenant_key, "jobs")
    status = json.loads(cli(live_server, tenant_key, "status", job_id, "--json").stdout)
    report = json.loads(cli(live_server, tenant_key, "report", job_id, "--json").stdout)
    html = cli(live_server, tenant_key, "report", job_id, "--html", str(tmp_path / "report.html"))
    saved = cli(live_server, tenant_key, "download", job_id, "-o", str(tmp_path / "model.onnx"))

    assert job_id in listed.stdout and "succeeded" in listed.stdout
    assert status == job
    assert report["comparison"] == job["comparison"]
    assert html.exit_code == 0 and "<canvas" in (tmp_path / "report.html").read_text()
    assert saved.exit_code == 0, saved.output
    with Client(live_server.url, tenant_key) as client:
        artifact = client.request("GET", f"/v1/artifacts/{job['artifact_id']}").json()
    assert hashlib.sha256((tmp_path / "model.onnx").read_bytes()).hexdigest() == artifact["sha256"]


def test_json_output_and_step_values(
    live_server: LiveServer, tenant_key: str, ready_model: dict[str, Any]
) -> None:
    result = cli(
        live_server,
        tenant_key,
        "compress",
        ready_model["id"],
        "--step",
        'quantize.dynamic:weight_type=quint8,nodes_to_exclude=["a","b"],reduce_range=false',
        "--batch-sizes",
        "2",
        "--wait",
        "--interval",
        "0.2",
        "--json",
    )

    job = json.loads(result.stdout)
    assert result.exit_code == 0, result.output
    assert job["status"] == "succeeded"
    assert job["steps"][0]["params"]["weight_type"] == "quint8"
    assert job["steps"][0]["params"]["nodes_to_exclude"] == ["a", "b"]
    assert job["steps"][0]["params"]["reduce_range"] is False
    assert list(job["comparison"]["candidate"]["latency_ms"]) == ["2"]


def test_failed_job_exits_1_with_its_problem(
    live_server: LiveServer, tenant_key: str, ready_model: dict[str, Any]
) -> None:
    result = cli(
        live_server,
        tenant_key,
        "compress",
        ready_model["id"],
        "--step",
        'quantize.dynamic:op_types=["Bogus"]',
        "--wait",
        "--interval",
        "0.2",
    )

    assert result.exit_code == 1, result.output
    assert "failed" in result.stdout
    assert "invalid-params" in result.stderr and "Bogus" in result.stderr


def test_rejected_upload_with_wait_quiet_exits_1_and_says_why(
    live_server: LiveServer, tenant_key: str, tmp_path: Path
) -> None:
    garbage = tmp_path / "model.onnx"
    garbage.write_bytes(b"\x08\x07" + bytes(range(256)) * 4)

    result = cli(live_server, tenant_key, "upload", str(garbage), "--wait", "-q")

    assert result.exit_code == 1, result.output
    model_id = result.stdout.strip()
    with Client(live_server.url, tenant_key) as client:
        model = client.get_model(model_id).raw
    assert model["status"] == "rejected"
    assert model["error"]["title"] in result.stderr and model["error"]["detail"] in result.stderr


def test_cancel_command(live_server: LiveServer, tenant_key: str, mlp_onnx: Path) -> None:
    model = json.loads(cli(live_server, tenant_key, "upload", str(mlp_onnx), "--json").stdout)
    job = json.loads(
        cli(live_server, tenant_key, "compress", model["id"], "-s", "quantize.dynamic", "--json").stdout
    )

    cancelled = cli(live_server, tenant_key, "cancel", job["id"], "--json")
    again = cli(live_server, tenant_key, "cancel", job["id"])

    assert cancelled.exit_code == 0 and json.loads(cancelled.stdout)["status"] == "cancelled"
    assert again.exit_code == 3 and "409" in again.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["compress", "some-model"],  # --step is required
        ["compress", "some-model", "--step", "quantize.dynamic:=1"],
        ["compress", "some-model", "--step", 'quantize.dynamic:op_types=["x"'],
        ["compress", "some-model", "--step", "quantize.dynamic", "--batch-sizes", "1,x"],
        ["upload", "/no/such/file.onnx"],
    ],
)
def test_usage_errors_exit_2(live_server: LiveServer, tenant_key: str, args: list[str]) -> None:
    assert cli(live_server, tenant_key, *args).exit_code == 2


def test_server_errors_exit_3_and_print_the_problem(
    live_server: LiveServer, tenant_key: str, ready_model: dict[str, Any]
) -> None:
    unknown = cli(live_server, tenant_key, "compress", ready_model["id"], "--step", "quantize.magic")
    bad_key = cli(live_server, "mp_not-a-key", "jobs")
    missing = cli(live_server, tenant_key, "status", "00000000-0000-0000-0000-000000000000")
    down = runner.invoke(app, ["jobs", "--url", f"http://127.0.0.1:{free_port()}", "--key", tenant_key])

    assert unknown.exit_code == 3 and "unknown-technique" in unknown.stderr
    assert bad_key.exit_code == 3 and "401" in bad_key.stderr
    assert missing.exit_code == 3 and "404" in missing.stderr
    assert down.exit_code == 3 and "Cannot reach the server" in down.stderr


def test_missing_key_is_a_usage_error(live_server: LiveServer, tmp_path: Path) -> None:
    result = runner.invoke(app, ["jobs", "--url", live_server.url], env={"MODELPRESS_HOME": str(tmp_path)})

    assert result.exit_code == 2
    assert "no API key" in result.stderr


def test_webhook_secret_and_techniques(live_server: LiveServer, tenant_key: str) -> None:
    secret = cli(live_server, tenant_key, "webhook-secret", "--json")
    catalog = cli(live_server, tenant_key, "techniques")

    assert json.loads(secret.stdout)["secret"].startswith("whsec_")
    assert "quantize.dynamic" in catalog.stdout and "per_channel" in catalog.stdout


def test_compress_help_spells_its_step_example_out_at_80_columns() -> None:
    result = runner.invoke(app, ["compress", "--help"], env={"COLUMNS": "80", "TERMINAL_WIDTH": "80"})

    assert result.exit_code == 0, result.output
    assert max(len(line) for line in result.stdout.splitlines()) <= 80
    assert "--step quantize.dynamic:per_channel=true" in result.stdout  # not cut to "quantize.dynamic:…"
