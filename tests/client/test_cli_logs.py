"""`modelpress logs JOB`: the job's structured lines as text or JSON Lines, through the SDK."""

from __future__ import annotations

import json
from typing import Any

from tests.client.conftest import LiveServer
from tests.client.test_cli import cli


def test_logs_prints_every_line_of_a_finished_job(
    live_server: LiveServer, tenant_key: str, finished_job: dict[str, Any]
) -> None:
    text = cli(live_server, tenant_key, "logs", finished_job["id"])
    as_json = cli(live_server, tenant_key, "logs", finished_job["id"], "--json")
    second = cli(live_server, tenant_key, "logs", finished_job["id"], "--step", "2", "--json")

    lines = [json.loads(row) for row in as_json.stdout.splitlines()]
    assert text.exit_code == 0 and as_json.exit_code == 0 and second.exit_code == 0, text.output
    assert [line["seq"] for line in lines] == list(range(len(lines)))
    assert len(text.stdout.strip().splitlines()) == len(lines)
    assert "attempt 1 started" in text.stdout and "step 2" in text.stdout and "job succeeded" in text.stdout
    assert "prune.magnitude finished" in text.stdout and "size_bytes=" in text.stdout
    assert [json.loads(row) for row in second.stdout.splitlines()] == [
        line for line in lines if line["step"] == 1
    ]


def test_logs_of_an_unknown_job_exit_3_with_the_problem(live_server: LiveServer, tenant_key: str) -> None:
    result = cli(live_server, tenant_key, "logs", "00000000-0000-4000-8000-000000000000")

    assert result.exit_code == 3 and "404" in result.stderr and "not-found" in result.stderr
