"""`modelpress serve` (embedded SQLite, filesystem broker) survives SIGKILL of its worker mid-job.

The supervisor restarts the worker with backoff, /readyz says `no live worker` until the new one
registers, the sweeper (a process of its own) re-queues the job, and the job completes. Leftovers
of killed processes (unfinished uploads, job folders) are removed when the server and worker start.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.chaos.live import free_port
from tests.chaos.processes import alive, descendants, wait_gone
from tests.figures import record

ROOT = Path(__file__).resolve().parents[2]
SLOW_FINETUNE = {"epochs": 60, "batch_size": 16}
SETTINGS = {
    "MODELPRESS_LEASE_SECONDS": "6",
    "MODELPRESS_SWEEP_INTERVAL_S": "2",
    "MODELPRESS_REQUEUE_AFTER_S": "8",
    "MODELPRESS_WORKER_HEARTBEAT_S": "1",
    "MODELPRESS_BENCH_TIME_BUDGET_S": "0.3",
    "MODELPRESS_BENCH_MIN_RUNS": "5",
}


@dataclass
class Embedded:
    """A running `modelpress serve`, its key, its folders and its log."""

    process: subprocess.Popen[bytes]
    url: str
    key: str
    home: Path
    scratch: Path
    log: Path

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.key}"}, timeout=30)

    def child(self, mark: str) -> int:
        """The pid of the supervised child whose command line holds `mark`."""
        for pid in descendants(self.process.pid):
            try:
                command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if mark in command and _parent(pid) == self.process.pid:
                return pid
        raise LookupError(f"no child running {mark!r}:\n{self.log.read_text()[-3000:]}")


def _parent(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("PPid:"):
            return int(line.split()[1])
    return 0


def _run(env: dict[str, str], cwd: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "service.cli.main", *args], env=env, cwd=cwd, capture_output=True, timeout=120
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    return done.stdout.decode()


def _readiness(url: str) -> tuple[int, dict[str, Any]]:
    try:
        answer = httpx.get(f"{url}/readyz", timeout=5)
    except httpx.TransportError as error:
        return 0, {"error": str(error)}
    return answer.status_code, answer.json()


def _plant_leftovers(home: Path, scratch: Path) -> list[Path]:
    """An unfinished upload of a killed API and a job folder of a process that is gone."""
    upload = home / "artifacts" / "tmp" / "upload-killed-api"
    upload.parent.mkdir(parents=True)
    upload.write_bytes(b"half an upload")
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    dead_pid = next(pid for pid in range(pid_max - 1, 300, -1) if not Path(f"/proc/{pid}").exists())
    job_folder = scratch / str(dead_pid) / "job-killed-attempt"
    job_folder.mkdir(parents=True)
    (job_folder / "original.onnx").write_bytes(b"scratch")
    return [upload, job_folder.parent]


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[Embedded]:
    home, temp = tmp_path / "var", tmp_path / "tmp"
    temp.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELPRESS_")}
    env.update(SETTINGS, MODELPRESS_HOME=str(home), PORT=str(free_port()), TMPDIR=str(temp))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    _run(env, tmp_path, "migrate")
    key = _run(env, tmp_path, "keys", "create", "--tenant", "embedded").strip()
    log = tmp_path / "serve.log"
    with log.open("wb") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "service.cli.main", "serve"],
            env=env,
            cwd=tmp_path,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Embedded(process, f"http://127.0.0.1:{env['PORT']}", key, home, temp / "modelpress-scratch", log)
    try:
        yield server
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def _wait_ready(server: Embedded, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while _readiness(server.url)[0] != 200:
        assert server.process.poll() is None, server.log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"never ready:\n{server.log.read_text()[-3000:]}"
        time.sleep(0.3)


def _job(client: httpx.Client, job_id: str) -> dict[str, Any]:
    body: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
    return body


def test_sigkilled_worker_is_restarted_and_its_job_completes(
    embedded: Embedded, mlp_onnx: Path, digits_npz: Path
) -> None:
    leftovers = _plant_leftovers(embedded.home, embedded.scratch)
    _wait_ready(embedded, timeout=120)
    assert not any(path.exists() for path in leftovers), "leftovers of killed processes survived start-up"

    with embedded.client() as client:
        model = client.post("/v1/models", files={"file": ("mlp.onnx", mlp_onnx.read_bytes())}).json()
        dataset = client.post("/v1/datasets", files={"file": ("d.npz", digits_npz.read_bytes())}).json()
        step = {
            "technique": "prune.structured",
            "params": {"sparsity": 0.5, "finetune": {"dataset_id": dataset["id"], **SLOW_FINETUNE}},
        }
        submitted = client.post("/v1/jobs", json={"model_id": model["id"], "steps": [step]})
        assert submitted.status_code == 202, submitted.text
        job_id = submitted.json()["id"]
        deadline = time.monotonic() + 180
        while not (job := _job(client, job_id))["stage"].startswith("step 1/1"):
            assert job["status"] in ("queued", "running") and time.monotonic() < deadline, job
            time.sleep(0.2)

        worker = embedded.child("worker.app worker")
        sweeper = embedded.child("worker.sweep_loop")
        pool = descendants(worker)
        os.kill(worker, signal.SIGKILL)  # the worker's main process alone, as the OOM killer would
        killed_at = time.monotonic()

        seen: dict[str, float] = {}
        states: list[int] = []
        deadline = time.monotonic() + 240
        while "succeeded" not in seen:
            status, body = _readiness(embedded.url)
            now = time.monotonic() - killed_at
            states.append(status)
            if status == 503 and body["checks"].get("workers") == "no live worker":
                seen.setdefault("not ready", now)
            if status == 200 and "not ready" in seen:
                seen.setdefault("ready again", now)
            if "pool gone" not in seen and not any(alive(pid) for pid in pool):
                seen["pool gone"] = now
            job = _job(client, job_id)
            if job["attempts"] == 2 and job["status"] == "running":
                seen.setdefault("running again", now)
            if job["status"] in ("succeeded", "failed"):
                assert job["status"] == "succeeded", job
                seen["succeeded"] = now
            assert time.monotonic() < deadline, (seen, job)
            time.sleep(0.1)

    assert "not ready" in seen and "ready again" in seen, (seen, states)
    # Orphaned pool processes leave within seconds rather than finishing a job whose lease is lost.
    assert seen.get("pool gone", float("inf")) < 10, ("the killed worker's pool processes outlived it", seen)
    assert job["attempts"] == 2
    assert alive(sweeper), "the sweeper must not share the worker's fate"
    restarted = embedded.child("worker.app worker")
    assert restarted != worker
    # The restarted worker's housekeeping removes the killed worker's folders on its next beats.
    deadline = time.monotonic() + 15
    while (left := list(embedded.scratch.glob("*/job-*"))) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert left == [], "job folders were left behind"
    log = embedded.log.read_text()
    assert f"worker (pid {worker}) exited with code -9; restarting in 1 s" in log

    os.killpg(embedded.process.pid, signal.SIGTERM)
    stopping = time.monotonic()
    embedded.process.wait(timeout=60)
    stop_s = time.monotonic() - stopping
    assert wait_gone([restarted, sweeper, *descendants(restarted)], timeout=10)
    record(
        "embedded_recovery",
        {
            "mode": "modelpress serve: SQLite, filesystem broker, local store",
            "killed": "the Celery worker's main process (SIGKILL) during a fine-tuning step",
            "restart backoff": "1 s, doubling to 30 s; reset after 60 s up",
            "heartbeat, s": float(SETTINGS["MODELPRESS_WORKER_HEARTBEAT_S"]),
            "lease_seconds (test)": int(SETTINGS["MODELPRESS_LEASE_SECONDS"]),
            "sweep_interval_s (test)": float(SETTINGS["MODELPRESS_SWEEP_INTERVAL_S"]),
            "kill to /readyz 503 'no live worker', s": round(seen["not ready"], 2),
            "kill to /readyz ready again (worker restarted), s": round(seen["ready again"], 2),
            "kill to job running again (attempt 2), s": round(seen.get("running again", float("nan")), 2),
            "kill to job succeeded, s": round(seen["succeeded"], 2),
            "kill to the orphaned pool processes gone, s": round(seen["pool gone"], 2),
            "SIGTERM to everything stopped, s": round(stop_s, 2),
            "leftovers planted / left after start-up": f"{len(leftovers)} / 0",
        },
    )
