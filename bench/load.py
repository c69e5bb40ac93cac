"""Load bench of the HTTP API: the embedded default and Postgres with several API processes.

    python -m bench.load                 # both, writes bench/LOAD.md and bench/load.json
    python -m bench.load --duration 10   # a shorter run, same report

The load generator (bench/load_client.py) runs on the same machine, so the server's own time per
request (its Server-Timing header) is reported beside the latency the clients saw.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from bench import load_servers
from bench.load_client import Plan, run
from bench.load_report import summarize, write_report
from bench.machine import machine

HERE = Path(__file__).parent
GOALS = {"embedded_p99_ms": 500, "postgres_rps": 400, "postgres_p99_ms": 250, "server_ms": 2.0}


def _model(folder: Path) -> Path:
    from tests import model_zoo  # torch only in the bench process, never in the API

    return model_zoo.export_onnx(model_zoo.trained(model_zoo.DigitsMLP), folder / "mlp.onnx")


def _submit(client: httpx.Client, model_id: str) -> str:
    answer = client.post(
        "/v1/jobs", json={"model_id": model_id, "steps": [{"technique": "quantize.dynamic"}]}
    )
    answer.raise_for_status()
    return str(answer.json()["id"])


def _wait(client: httpx.Client, job_id: str, timeout_s: float = 600) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while (body := client.get(f"/v1/jobs/{job_id}").json())["status"] not in {
        "succeeded",
        "failed",
        "cancelled",
    }:
        if time.monotonic() > deadline:
            raise RuntimeError(f"job {job_id} still {body['status']}")
        time.sleep(1)
    return dict(body)


class JobsBackToBack(threading.Thread):
    """Keeps one job running for the whole window: submit, wait for it to end, submit the next."""

    def __init__(self, url: str, headers: dict[str, str], model_id: str) -> None:
        super().__init__(daemon=True)
        self.client = httpx.Client(base_url=url, headers=headers, timeout=60)
        self.model_id = model_id
        self.finished: list[str] = []

    def run(self) -> None:
        """Until the server goes away at the end of the run."""
        with self.client:
            while True:
                try:
                    self.finished.append(_wait(self.client, _submit(self.client, self.model_id))["status"])
                except (httpx.HTTPError, KeyError):  # the server stopping, or a 503 while it does
                    return


def embedded(folder: Path, clients: list[int], duration_s: float) -> list[dict[str, Any]]:
    """The default `modelpress serve` under load while jobs run back to back."""
    model = _model(folder)
    rows = []
    with load_servers.embedded(folder / "var") as (url, key):
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=url, headers=headers, timeout=60) as client, model.open("rb") as handle:
            model_id = client.post("/v1/models", files={"file": ("mlp.onnx", handle)}).json()["id"]
            polled = _submit(client, model_id)
            jobs = JobsBackToBack(url, headers, model_id)
            jobs.start()
            host, port = url.removeprefix("http://").split(":")
            plan = Plan(host, int(port), [f"/v1/jobs/{polled}", "/v1/jobs"], headers)
            for count in clients:
                before = len(jobs.finished)
                samples = run(plan, count, duration_s)
                row = summarize(f"embedded (SQLite), {count} clients", samples, duration_s, count)
                row["jobs_finished_during"] = len(jobs.finished) - before
                row["kind"], row["load_at_end"] = "embedded", machine()["load"]
                row["paths"] = "GET /v1/jobs/{id} and GET /v1/jobs in turn"
                rows.append(row)
    return rows


def postgres(
    folder: Path, clients: int, duration_s: float, processes: int, store: str = "local"
) -> list[dict[str, Any]]:
    """Postgres + Redis with `uvicorn --workers processes`, polling one finished job, then downloading
    its artifact (the one path that reads the store); `store` "s3" puts the store on SeaweedFS."""
    model = _model(folder)
    home = folder / f"prod-{store}"
    home.mkdir()
    rows = []
    with _store(store) as store_env, load_servers.production(
        home, database="modelpress_bench_load", redis_url="redis://127.0.0.1:6379/5",
        processes=processes, max_concurrent=32, store=store_env,
    ) as (url, key, settings):  # fmt: skip
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=url, headers=headers, timeout=60) as client, model.open("rb") as handle:
            model_id = client.post("/v1/models", files={"file": ("mlp.onnx", handle)}).json()["id"]
            job = _wait(client, _submit(client, model_id))
        host, port = url.removeprefix("http://").split(":")
        path = [f"/v1/jobs/{job['id']}"]
        label = f"Postgres, {processes} API processes" + (", S3 store" if store == "s3" else "")
        plain = Plan(host, int(port), path, headers)
        cached = Plan(host, int(port), path, headers, etag=True)
        download = Plan(host, int(port), [f"/v1/artifacts/{job['artifact_id']}/content"], headers)
        alone = summarize(f"{label}, 1 client", run(plain, 1, 10), 10, 1)
        full = summarize(f"{label}, {clients} clients", run(plain, clients, duration_s), duration_s, clients)
        half = duration_s / 2
        conditional = f"{label}, {clients} clients, If-None-Match (304)"
        polls = summarize(conditional, run(cached, clients, half), half, clients)
        downloads = summarize(f"{label}, 10 clients, artifact download", run(download, 10, half), half, 10)
        for row, paths in (
            (alone, "GET /v1/jobs/{id} (a finished job with its comparison)"),
            (full, "GET /v1/jobs/{id} (a finished job with its comparison)"),
            (polls, "GET /v1/jobs/{id} (a finished job with its comparison)"),
            (downloads, "GET /v1/artifacts/{id}/content (the int8 model, read from the store)"),
        ):
            row["paths"] = paths
            row["settings"] = {k: v for k, v in settings.items() if "MAX_CONCURRENT" in k}
            row["kind"], row["load_at_end"] = f"postgres-{store}", machine()["load"]
            rows.append(row)
    return rows


@contextmanager
def _store(kind: str) -> Iterator[dict[str, str]]:
    """The environment of the artifact store: nothing for the local folder, a SeaweedFS bucket for s3."""
    if kind == "local":
        yield {}
        return
    from tests.seaweed import start_seaweed

    server = start_seaweed()
    try:
        yield {**server.env(), "MODELPRESS_STORAGE_URL": f"s3://{server.new_bucket()}/load"}
    finally:
        server.stop()


def main() -> None:
    """Run the bench and write the report."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=60.0, help="seconds per measured phase")
    parser.add_argument("--clients", type=int, nargs="+", default=[50, 100], help="embedded client counts")
    parser.add_argument("--processes", type=int, default=2, help="API processes on Postgres")
    parser.add_argument("--only", choices=["embedded", "postgres"], default=None)
    parser.add_argument(
        "--stores", nargs="+", choices=["local", "s3"], default=["local"], help="artifact stores for Postgres"
    )
    parser.add_argument("--report-only", action="store_true", help="rewrite LOAD.md from load.json")
    args = parser.parse_args()
    if args.report_only:
        write_report(json.loads((HERE / "load.json").read_text()), HERE / "LOAD.md")
        return
    started = machine()
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="modelpress-load-") as scratch:
        folder = Path(scratch)
        if args.only in (None, "embedded"):
            (folder / "embedded").mkdir()
            rows += embedded(folder / "embedded", args.clients, args.duration)
        if args.only in (None, "postgres"):
            for store in args.stores:
                rows += postgres(folder, 50, args.duration, args.processes, store)
    if args.only and (HERE / "load.json").exists():  # keep the other kind's rows of an earlier run
        earlier = json.loads((HERE / "load.json").read_text())
        rows = [row for row in earlier["rows"] if not row["kind"].startswith(args.only)] + rows
        notes = [
            *earlier.get("notes", []),
            f"The {args.only} rows come from a later `--only {args.only}` run.",
        ]
    result = {
        "machine": started,
        "load_after": machine()["load"],
        "goals": GOALS,
        "rows": rows,
        "notes": notes,
    }
    (HERE / "load.json").write_text(json.dumps(result, indent=2) + "\n")
    write_report(result, HERE / "LOAD.md")
    print((HERE / "LOAD.md").read_text())


if __name__ == "__main__":
    main()
