"""`modelpress compress`: submit a job and, with --wait, follow it to the end with a progress bar."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from modelpress import Client
from service.cli import render
from service.cli.context import (
    DEFAULT_URL,
    JOB_FAILED,
    JsonOption,
    KeyOption,
    QuietOption,
    UrlOption,
    connect,
    emit_json,
    err,
    out,
    print_problem,
    usage_error,
)
from service.cli.gates import FailOn, shortfall
from service.cli.steps import StepSyntaxError, parse_batch_sizes, parse_step

FAIL_ON_HELP = (
    "With --wait, which result fails the command: budget (exit 4 when over the accuracy budget), "
    "slower (exit 5 when not faster), any (either), never (exit 0 whenever the job succeeded)"
)
STEP_HELP = (
    # short, breakable words: rich cuts an unbreakable token with "…" at 80 columns
    "A technique, then optionally : and key=value pairs joined by commas; repeatable, applied in "
    'order; values are JSON when they parse (true, 3, 0.5, ["a"]) else strings'
)


def build_request(
    model_id: str,
    steps: list[str],
    *,
    eval_dataset: str | None,
    metric: str | None,
    max_accuracy_drop: float | None,
    batch_sizes: str | None,
    callback_url: str | None,
) -> dict[str, Any]:
    """The POST /v1/jobs body from the command's options (StepSyntaxError on a malformed --step)."""
    evaluation: dict[str, Any] = {}
    for name, value in (
        ("dataset_id", eval_dataset),
        ("metric", metric),
        ("max_accuracy_drop", max_accuracy_drop),
    ):
        if value is not None:
            evaluation[name] = value
    if batch_sizes:
        evaluation["batch_sizes"] = parse_batch_sizes(batch_sizes)
    body: dict[str, Any] = {"model_id": model_id, "steps": [parse_step(spec) for spec in steps]}
    if evaluation:
        body["evaluation"] = evaluation
    if callback_url:
        body["callback_url"] = callback_url
    return body


def _model_id(client: Client, model: str) -> str:
    """An id as given, or the id of the file just uploaded when MODEL names a file."""
    path = Path(model)
    if not path.is_file():
        return model
    uploaded = client.upload_model(path)
    err.print(f"uploaded {path.name} as model {uploaded.id}")
    return uploaded.id


def compress(
    model: Annotated[str, typer.Argument(help="Model id, or a model file to upload first")],
    step: Annotated[list[str], typer.Option("--step", "-s", help=STEP_HELP)],
    eval_dataset: Annotated[str | None, typer.Option(help="Dataset id for accuracy (else fidelity)")] = None,
    metric: Annotated[str | None, typer.Option(help="top1, top5, mse or mae")] = None,
    max_accuracy_drop: Annotated[float | None, typer.Option(help="Accuracy budget, e.g. 0.01")] = None,
    batch_sizes: Annotated[str | None, typer.Option(help="Batch sizes to time, e.g. 1,8")] = None,
    callback_url: Annotated[
        str | None, typer.Option(help="POST the signed job document here when it ends")
    ] = None,
    idempotency_key: Annotated[
        str | None, typer.Option(help="Resubmitting with the same key replays")
    ] = None,
    wait: Annotated[bool, typer.Option(help="Follow the job with a progress bar until it ends")] = False,
    interval: Annotated[float, typer.Option(min=0.1, help="Seconds between polls with --wait")] = 1.0,
    timeout: Annotated[float | None, typer.Option(help="Give up waiting after this many seconds")] = None,
    fail_on: Annotated[FailOn, typer.Option(help=FAIL_ON_HELP)] = FailOn.BUDGET,
    url: UrlOption = DEFAULT_URL,
    key: KeyOption = None,
    as_json: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Compress a model with one or more steps; with --wait, exit 1 unless it succeeds (and see --fail-on).

    Example: modelpress compress MODEL --step quantize.dynamic:per_channel=true --wait
    """
    try:
        body = build_request(
            model,
            step,
            eval_dataset=eval_dataset,
            metric=metric,
            max_accuracy_drop=max_accuracy_drop,
            batch_sizes=batch_sizes,
            callback_url=callback_url,
        )
    except StepSyntaxError as exc:
        raise usage_error(str(exc)) from None
    with connect(url, key) as client:
        body["model_id"] = _model_id(client, model)
        job = client.create_job(body, idempotency_key=idempotency_key)
        if not wait:
            if as_json:
                emit_json(job.raw)
            elif quiet:
                typer.echo(job.id)
            else:
                out.print(f"job [bold]{job.id}[/] {job.status}; follow it: modelpress status {job.id}")
            return
        progress = Console(quiet=True) if quiet else err
        job = render.watch_job(client, job.id, progress, interval=interval, timeout=timeout)
    _finish(job.raw, as_json=as_json, quiet=quiet, fail_on=fail_on)


def _finish(job: dict[str, Any], *, as_json: bool, quiet: bool, fail_on: FailOn) -> None:
    if as_json:
        emit_json(job)
    elif quiet:
        typer.echo(job["id"])
    elif job["status"] == "succeeded":
        out.print(render.comparison_table(job["comparison"]))
        render.print_verdict(out, job["comparison"])
        out.print(f"download: modelpress download {job['id']}")
    else:
        out.print(f"job {job['id']}: {render.status_text(job['status'])} ({job['stage']})")
    if job["status"] in ("failed", "cancelled"):
        if job.get("error") and not as_json:
            print_problem(job["error"])
        raise typer.Exit(JOB_FAILED)
    if job["status"] != "succeeded":
        err.print(f"stopped waiting; the job is still {job['status']}")
        raise typer.Exit(JOB_FAILED)
    code, reason = shortfall(job.get("comparison"), fail_on)
    if code:
        err.print(f"[bold red]--fail-on {fail_on}:[/] {reason} (exit {code})")
        raise typer.Exit(code)
