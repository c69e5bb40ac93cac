"""The CLI in pipelines: --fail-on exit codes, bare ids with -q, downloads that never overwrite."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from service.cli.context import NOT_FASTER, OK, OVER_BUDGET
from service.cli.gates import FailOn, shortfall
from tests.client.conftest import LiveServer
from tests.client.test_cli import cli

VERDICTS = {
    "good": {"verdict": {"faster": True, "within_accuracy_budget": True}},
    "over": {"verdict": {"faster": True, "within_accuracy_budget": False}},
    "slow": {"verdict": {"faster": False, "within_accuracy_budget": True}},
    "both": {"verdict": {"faster": False, "within_accuracy_budget": False}},
    "unbudgeted": {"verdict": {"faster": True, "within_accuracy_budget": None}},
}


@pytest.mark.parametrize(
    ("verdict", "fail_on", "code"),
    [
        ("good", FailOn.ANY, OK),
        ("over", FailOn.BUDGET, OVER_BUDGET),
        ("over", FailOn.SLOWER, OK),
        ("slow", FailOn.BUDGET, OK),
        ("slow", FailOn.SLOWER, NOT_FASTER),
        ("both", FailOn.ANY, OVER_BUDGET),
        ("both", FailOn.NEVER, OK),
        ("unbudgeted", FailOn.BUDGET, OK),
    ],
)
def test_fail_on_gates(verdict: str, fail_on: FailOn, code: int) -> None:
    assert shortfall(VERDICTS[verdict], fail_on)[0] == code


def test_over_budget_exits_4_by_default_and_0_with_never(
    live_server: LiveServer, tenant_key: str, ready_model: dict[str, Any], digits_dataset: dict[str, Any]
) -> None:
    args = ["compress", ready_model["id"], "-s", "prune.magnitude:sparsity=0.95", "--eval-dataset"]
    args += [digits_dataset["id"], "--metric", "top1", "--max-accuracy-drop", "0", "--batch-sizes", "1"]
    args += ["--wait", "--interval", "0.2"]

    gated = cli(live_server, tenant_key, *args)
    job_id = gated.stdout.split("modelpress download ")[1].split()[0]
    replayed = cli(live_server, tenant_key, *args, "--fail-on", "never", "--idempotency-key", job_id)

    assert gated.exit_code == OVER_BUDGET, gated.output
    assert "over its accuracy budget" in gated.stderr
    assert replayed.exit_code == OK, replayed.output


def test_quiet_prints_bare_ids(
    live_server: LiveServer, tenant_key: str, mlp_onnx: Path, ready_model: dict[str, Any]
) -> None:
    model = cli(live_server, tenant_key, "upload", str(mlp_onnx), "-q")
    job = cli(live_server, tenant_key, "compress", ready_model["id"], "-s", "quantize.dynamic", "-q")
    listed = cli(live_server, tenant_key, "jobs", "-q")

    assert model.exit_code == 0 and len(model.stdout.strip()) == 36 and "\n" not in model.stdout.strip()
    assert job.exit_code == 0 and len(job.stdout.strip()) == 36
    assert job.stdout.strip() in listed.stdout.split()


def test_download_never_overwrites_without_force(
    live_server: LiveServer,
    tenant_key: str,
    finished_job: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    job_id = finished_job["id"]
    original = tmp_path / "model.onnx"
    original.write_bytes(b"the user's original model")

    refused = cli(live_server, tenant_key, "download", job_id, "-o", str(original))
    default = cli(live_server, tenant_key, "download", job_id, "--json")
    again = cli(live_server, tenant_key, "download", job_id)
    forced = cli(live_server, tenant_key, "download", job_id, "-o", str(original), "--force", "-q")

    assert refused.exit_code == 2 and "--force" in refused.stderr
    saved = Path(json.loads(default.stdout)["path"])
    assert default.exit_code == 0 and saved.name == f"{job_id}.onnx" and saved.parent.resolve() == tmp_path
    assert again.exit_code == 2 and "exists" in again.stderr
    assert forced.exit_code == 0 and forced.stdout.strip() == str(original)
    assert original.read_bytes() == saved.read_bytes()
