"""Schemathesis against the running API's own OpenAPI document: no 5xx, every response as documented."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest

from tests.chaos.live import LiveApi, drop_tenant, other_workers_paused, start_api, stop_api
from tests.figures import record
from tests.fixtures.api import new_key

MAX_EXAMPLES = 40
# The server checks meaning the schema cannot express (a cursor it issued, a technique of its
# catalog, bytes that really are an .npz, a reused Idempotency-Key), so a schema-valid request
# may rightly get 422: that one check is left out, every other one runs.
EXCLUDED = "positive_data_acceptance"


@pytest.fixture(scope="module")
def server(worker: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApi]:
    # A live (paused) worker keeps /readyz at 200: without one it rightly answers 503, a 5xx.
    # Workers paused, and the tenant dropped afterwards: nothing the fuzzer uploads gets ingested.
    with other_workers_paused():
        api = start_api(tmp_path_factory.mktemp("contract") / "api.log")
        try:
            yield api
        finally:
            stop_api(api)


def test_schemathesis_finds_no_server_error_and_no_undocumented_response(
    server: LiveApi, tmp_path: Path
) -> None:
    key = new_key()
    junit = tmp_path / "junit.xml"
    command = [
        sys.executable, "-m", "schemathesis.cli", "run", f"{server.url}/openapi.json",
        "--header", f"Authorization: Bearer {key}",
        "--checks", "all", "--exclude-checks", EXCLUDED,
        "--max-examples", str(MAX_EXAMPLES), "--request-timeout", "30",
        "--no-color", "--report", "junit", "--report-junit-path", str(junit),
    ]  # fmt: skip
    started = time.monotonic()
    try:
        run = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=540)
    finally:
        drop_tenant(key)
    elapsed = time.monotonic() - started

    assert run.returncode == 0, run.stdout[-8000:] + run.stderr[-2000:]
    assert "unhandled error" not in server.log.read_text()
    suites = ElementTree.parse(junit).getroot()
    operations = len(suites.findall(".//testcase"))
    generated = re.search(r"(\d+) generated", run.stdout)
    seed = re.search(r"Seed: (\d+)", run.stdout)
    assert operations > 0 and generated is not None
    record(
        "contract",
        {
            "schemathesis version": _version(),
            "API operations tested": operations,
            "test cases generated": int(generated.group(1)),
            "max examples per operation": MAX_EXAMPLES,
            "checks": f"all but {EXCLUDED}",
            "phases": "examples, coverage, fuzzing, stateful",
            "failures": len(suites.findall(".//failure")) + len(suites.findall(".//error")),
            "seed": seed.group(1) if seed else "unknown",
            "seconds": round(elapsed, 1),
        },
    )


def _version() -> str:
    from importlib.metadata import version

    return version("schemathesis")
