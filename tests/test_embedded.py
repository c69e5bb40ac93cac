"""`modelpress serve` on the embedded default (SQLite, filesystem broker, local store) runs a job."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench.load_servers import clean_env, free_port, wait_ready


@pytest.fixture
def embedded_server(tmp_path: Path) -> Iterator[tuple[str, str]]:
    env = clean_env(
        MODELPRESS_HOME=str(tmp_path / "var"),
        MODELPRESS_BENCH_TIME_BUDGET_S="0.3",
        MODELPRESS_BENCH_MIN_RUNS="5",
        PORT=str(free_port()),
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "service.cli.main", "serve"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{env['PORT']}"
    output: list[str] = []
    assert process.stdout is not None
    # Drained in the background: a full pipe would block the server; the key is read from these lines.
    threading.Thread(
        target=lambda: output.extend(line.decode() for line in process.stdout or []), daemon=True
    ).start()
    try:
        wait_ready(url, process, timeout_s=90)
        printed = re.search(r"API key for tenant 'default'[^:]*: (\S+)", "".join(output))
        assert printed, "serve did not print the first key"
        assert not list((tmp_path / "var").rglob("*key*")), (
            "the key is shown once, never saved in the data folder"
        )
        yield url, printed.group(1)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)


def test_serve_runs_a_job_without_any_server(embedded_server: tuple[str, str], mlp_onnx: Path) -> None:
    url, key = embedded_server
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        with mlp_onnx.open("rb") as handle:
            model = client.post("/v1/models", files={"file": ("mlp.onnx", handle)}).json()
        job = client.post(
            "/v1/jobs", json={"model_id": model["id"], "steps": [{"technique": "quantize.dynamic"}]}
        )
        assert job.status_code == 202, job.text
        deadline = time.monotonic() + 180
        while (body := client.get(f"/v1/jobs/{job.json()['id']}").json())["status"] not in {
            "succeeded",
            "failed",
        }:
            assert time.monotonic() < deadline, body
            time.sleep(1)

    assert body["status"] == "succeeded", body
    assert body["comparison"]["candidate"]["size_bytes"] < body["comparison"]["baseline"]["size_bytes"]


def _processes_of(home: Path) -> dict[int, str]:
    """pid -> command line of every process started with this MODELPRESS_HOME."""
    marker = f"MODELPRESS_HOME={home}".encode()
    found = {}
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if marker in (proc / "environ").read_bytes().split(b"\0"):
                found[int(proc.name)] = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:  # the process ended while we looked
            continue
    return found


def test_serve_runs_its_worker_below_the_api(embedded_server: tuple[str, str], tmp_path: Path) -> None:
    """Compressions yield the CPU to requests: the worker is niced, the API is not."""
    processes = _processes_of(tmp_path / "var")
    workers = [pid for pid, command in processes.items() if "celery" in command and " worker " in command]
    servers = [pid for pid, command in processes.items() if "service.cli.main serve" in command]
    assert workers and servers, processes
    assert {os.getpriority(os.PRIO_PROCESS, pid) for pid in workers} == {10}
    assert {os.getpriority(os.PRIO_PROCESS, pid) for pid in servers} == {0}
