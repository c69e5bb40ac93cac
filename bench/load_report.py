"""Figures of a load run (throughput, errors, latency and server-time percentiles) and their report."""

from __future__ import annotations

from collections import Counter
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.load_client import Sample

OK_STATUSES = {200, 304}
VERSIONED = ("fastapi", "starlette", "uvicorn", "sqlalchemy", "psycopg", "uvloop", "httptools")


def percentile(values: list[float], fraction: float) -> float:
    """The value below which `fraction` of the values lie (nearest rank)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def summarize(label: str, samples: list[Sample], duration_s: float, clients: int) -> dict[str, Any]:
    """One row of the report."""
    latencies = [s.latency_s * 1000 for s in samples]
    server = [s.server_ms for s in samples if s.server_ms is not None]
    return {
        "label": label,
        "clients": clients,
        "duration_s": duration_s,
        "requests": len(samples),
        "requests_per_s": round(len(samples) / duration_s, 1),
        "errors": sum(1 for s in samples if s.status not in OK_STATUSES),
        "statuses": dict(Counter(str(s.status) for s in samples)),
        "latency_ms": {name: round(percentile(latencies, q), 1) for name, q in _QUANTILES},
        "server_ms": {name: round(percentile(server, q), 2) for name, q in _QUANTILES},
        "server_ms_mean": round(sum(server) / len(server), 2) if server else None,
    }


_QUANTILES = (("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("max", 1.0))


def _versions() -> str:
    found = []
    for name in VERSIONED:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return ", ".join(found)


def write_report(result: dict[str, Any], path: Path) -> None:
    """bench/LOAD.md: the machine, the table, the goals."""
    box = result["machine"]
    lines = [
        "# API load bench",
        "",
        "Written by `python -m bench.load` (see its docstring); raw figures in `bench/load.json`.",
        "",
        f"- Machine: {box['cpu']}, {box['cores']} cores, Python {box['python']}; {_versions()}.",
        f"- Load average (1 min) at start {box['load']:.2f}, at end {result['load_after']:.2f}.",
        "- The load generator (raw asyncio HTTP/1.1, keep-alive, each client sends its next request as",
        "  soon as the answer arrives, no pause) runs on the same cores as the API, its database and",
        "  its worker; `server ms` is the API's own time per request (Server-Timing `total`, from",
        "  the request's arrival in the app to the start of its answer, admission wait included).",
        "- Embedded rows: `modelpress serve` defaults; jobs (quantize.dynamic with its evaluation) run",
        "  back to back on the embedded worker for the whole window. Postgres rows: `uvicorn --workers 2`",
        "  with the default settings (`MAX_CONCURRENT_REQUESTS=32` per process), a Celery worker idle.",
        "- `S3 store` rows: the same, with the artifact store on a local SeaweedFS S3 server",
        "  (`--stores local s3`); `artifact download` rows stream a job's int8 model, the one request here",
        "  that reads the store (job reads come from Postgres whatever the store).",
        "- `load` is the machine's 1-minute load average when the row's phase ended.",
        "",
        "| run | req/s | errors | latency p50 / p95 / p99 / max (ms) | server ms p50 / p99 / mean "
        "| statuses | load |",
        "| --- | ---: | ---: | --- | --- | --- | ---: |",
    ]
    for row in result["rows"]:
        lat, srv = row["latency_ms"], row["server_ms"]
        load = f"{row['load_at_end']:.1f}" if "load_at_end" in row else "—"
        lines.append(
            f"| {row['label']} | {row['requests_per_s']} | {row['errors']} "
            f"| {lat['p50']} / {lat['p95']} / {lat['p99']} / {lat['max']} "
            f"| {srv['p50']} / {srv['p99']} / {row['server_ms_mean']} | {row['statuses']} | {load} |"
        )
    lines += [f"- {note}" for note in result.get("notes", [])]
    lines += ["", "| goal | measured | met |", "| --- | --- | --- |", *goal_rows(result), ""]
    lines += [
        f"The load generator shares the machine's {box['cores']} cores with the API and the worker, so",
        "latency percentiles include waiting for a CPU; the `load` column shows what else ran. A 503",
        "would be the admission limit shedding a request that found no free slot within",
        "`QUEUE_WAIT_S` (1 s): the designed answer to more clients than the CPU can serve.",
        "",
    ]
    path.write_text("\n".join(lines) + "\n")


def goal_rows(result: dict[str, Any]) -> list[str]:
    """One table row per goal of issue 14, computed from the run's rows."""
    goals = result["goals"]
    rows = []
    for row in result["rows"]:
        label, p99 = row["label"], row["latency_ms"]["p99"]
        if label.startswith("embedded"):
            met = row["errors"] == 0 and p99 <= goals["embedded_p99_ms"]
            goal = f"{label}: 0 errors, p99 ≤ {goals['embedded_p99_ms']} ms"
            jobs = row.get("jobs_finished_during", 0)
            measured = f"{row['errors']} errors, p99 {p99} ms; {jobs} jobs finished in the window"
            rows.append(f"| {goal} | {measured} | {_yes(met)} |")
        elif row["clients"] == 1:
            server = row["server_ms"]["p50"]
            goal = f"{label}: server time ≤ {goals['server_ms']} ms"
            measured = f"p50 {server} ms, mean {row['server_ms_mean']} ms"
            rows.append(f"| {goal} | {measured} | {_yes(server <= goals['server_ms'])} |")
        elif "If-None-Match" not in label and "download" not in label:
            met = row["requests_per_s"] >= goals["postgres_rps"] and p99 <= goals["postgres_p99_ms"]
            met = met and row["errors"] == 0
            goal = f"{label}: ≥ {goals['postgres_rps']} req/s, p99 ≤ {goals['postgres_p99_ms']} ms, 0 errors"
            measured = f"{row['requests_per_s']} req/s, p99 {p99} ms, {row['errors']} errors"
            rows.append(f"| {goal} | {measured} | {_yes(met)} |")
    return rows


def _yes(met: bool) -> str:
    return "yes" if met else "**no**"
