"""Rich rendering for the CLI: tables of jobs and comparisons, and the live job progress bar."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from modelpress import Client, Job
from service.report import tables

STATUS_STYLE = {
    "succeeded": "green",
    "failed": "red",
    "cancelled": "yellow",
    "running": "cyan",
    "queued": "dim",
}


def status_text(status: str) -> str:
    """A job status with its colour."""
    return f"[{STATUS_STYLE.get(status, 'white')}]{status}[/]"


def jobs_table(jobs: list[dict[str, Any]]) -> Table:
    """One row per job, newest first."""
    table = Table(title="Jobs", header_style="bold")
    for column in ("id", "status", "progress", "stage", "steps", "created"):
        table.add_column(column, no_wrap=column in ("id", "created"))
    for job in jobs:
        table.add_row(
            job["id"],
            status_text(job["status"]),
            f"{job['progress'] * 100:.0f}%",
            job["stage"],
            " → ".join(step["technique"] for step in job["steps"]),
            job["created_at"][:19].replace("T", " "),
        )
    return table


def steps_table(job: dict[str, Any]) -> Table:
    """The job's steps with their status and artifact."""
    table = Table(title=f"Job {job['id']}: {job['status']} ({job['stage']})", header_style="bold")
    for column in ("#", "technique", "params", "status", "artifact"):
        table.add_column(column)
    for step in job["steps"]:
        params = ", ".join(f"{k}={v}" for k, v in step["params"].items() if v not in (None, [], {}))
        table.add_row(
            str(step["index"] + 1),
            step["technique"],
            params,
            status_text(step["status"]),
            step["artifact_id"] or "",
        )
    return table


def comparison_table(comparison: dict[str, Any]) -> Table:
    """Original against compressed: the same rows as the HTML report."""
    table = Table(title="Original vs compressed", header_style="bold")
    table.add_column("figure")
    for column in ("original", "compressed", "change"):
        table.add_column(column, justify="right")
    for row in tables.comparison_rows(comparison):
        table.add_row(row["label"], row["baseline"], row["candidate"], row["change"])
    for row in tables.fidelity_rows(comparison):
        table.add_row(f"fidelity: {row['label']}", "", row["value"], "")
    return table


def print_verdict(console: Console, comparison: dict[str, Any]) -> None:
    """The verdict's answers and every warning."""
    answers = "  ".join(
        f"{row['label']}: [{'green' if row['ok'] == 'True' else 'red' if row['ok'] == 'False' else 'dim'}]"
        f"{row['value']}[/]"
        for row in tables.verdict_rows(comparison)
    )
    console.print(f"[bold]Verdict[/]  {answers}")
    for warning in (comparison.get("verdict") or {}).get("warnings") or []:
        console.print(f"  [yellow]![/] {warning}", soft_wrap=True)


def current_step(job: dict[str, Any]) -> str:
    """'step 2/3 prune.magnitude', 'evaluating' or the status, for the progress line."""
    steps = job["steps"]
    for step in steps:
        if step["status"] != "succeeded":
            return f"step {step['index'] + 1}/{len(steps)} {step['technique']}"
    return "evaluating" if job["status"] == "running" else job["status"]


def watch_job(
    client: Client, job_id: str, console: Console, *, interval: float, timeout: float | None
) -> Job:
    """Follow the job with a live progress bar (stage, step, percent, elapsed) until it ends.

    The SDK's wait drives the bar: the job's Server-Sent Events, or polling every `interval`
    seconds where the stream breaks off (a proxy, an older server).
    """
    columns = (
        SpinnerColumn(),
        TextColumn("[bold]{task.fields[step]}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("queued", total=100, step="queued")

        def show(job: Job) -> None:
            progress.update(
                task, completed=job.progress * 100, description=job.stage[:80], step=current_step(job.raw)
            )

        return client.wait(job_id, on_progress=show, interval=interval, timeout=timeout)
