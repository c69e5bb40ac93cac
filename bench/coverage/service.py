"""The embedded `modelpress serve` (API + Celery worker) in a scratch home on a loopback port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from bench import load_servers

ROOT = Path(__file__).resolve().parents[2]


class Service:
    """A client of the running service: uploads, jobs, waiting for either to finish."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client

    def upload(self, kind: str, path: Path, timeout_s: float = 600) -> dict[str, Any]:
        with path.open("rb") as handle:
            created = self.client.post(f"/v1/{kind}", files={"file": (path.name, handle)})
        created.raise_for_status()
        body = created.json()
        if kind != "models":
            return body
        return self._wait(f"/v1/models/{body['id']}", {"ready", "rejected"}, timeout_s)

    def run_job(self, body: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        submitted = self.client.post("/v1/jobs", json=body)
        if submitted.status_code != 202:
            return {"status": "refused", "error": submitted.json()}
        return self._wait(
            f"/v1/jobs/{submitted.json()['id']}", {"succeeded", "failed", "cancelled"}, timeout_s
        )

    def _wait(self, path: str, final: set[str], timeout_s: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while (body := self.client.get(path).json())["status"] not in final:
            if time.monotonic() > deadline:
                if path.startswith("/v1/jobs/"):
                    self.client.post(f"{path}/cancel")
                return {**body, "status": "timed-out"}
            time.sleep(1)
        return body


@contextmanager
def running_service(home: Path, bench_budget_s: float) -> Iterator[Service]:
    """Start the embedded server with short timing budgets; stop its process group afterwards."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELPRESS_")}
    env.update(
        MODELPRESS_HOME=str(home),
        MODELPRESS_BENCH_TIME_BUDGET_S=str(bench_budget_s),
        MODELPRESS_BENCH_MIN_RUNS="10",
        PORT=str(load_servers.free_port()),
        PYTHONPATH=str(ROOT),
    )
    home.mkdir(parents=True, exist_ok=True)
    log = (home / "serve.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "service.cli.main", "serve"],
        env=env, cwd=home, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{env['PORT']}"
    try:
        load_servers.wait_ready(url, process, timeout_s=180, log=home / "serve.log")
        # The first key is printed once and never stored: make one for this run from the same home.
        created = subprocess.run(
            [sys.executable, "-m", "service.cli.main", "keys", "create", "--tenant", "coverage-bench"],
            env=env, cwd=home, capture_output=True, timeout=120, check=True,
        )  # fmt: skip
        key = created.stdout.decode().strip().splitlines()[-1].strip()
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as client:
            yield Service(client)
    finally:
        if process.poll() is None:  # a server that failed to start has already exited
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=120)
        log.close()
