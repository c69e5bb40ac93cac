"""Client commands for models, datasets, jobs, reports and downloads."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from modelpress import Artifact
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

JobArg = Annotated[str, typer.Argument(help="Job id")]
ExistingFile = Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)]


def upload(
    model: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="The model file")],
    name: Annotated[str | None, typer.Option(help="Display name (default: the file name)")] = None,
    input_shapes: Annotated[
        str | None, typer.Option(help="TorchScript only: JSON list of input shapes, e.g. '[[1,3,224,224]]'")
    ] = None,
    wait: Annotated[bool, typer.Option(help="Wait until ingest accepts or rejects the model")] = False,
    url: UrlOption = DEFAULT_URL,
    key: KeyOption = None,
    as_json: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Upload a model (.onnx, .zip of ONNX + external data, .pt2, TorchScript .pt)."""
    with connect(url, key) as client:
        uploaded = client.upload_model(model, name=name, input_shapes=input_shapes)
        if wait:
            uploaded = client.wait_model(uploaded.id)
    document = uploaded.raw
    if as_json:
        emit_json(document)
    elif quiet:
        typer.echo(document["id"])
    else:
        out.print(f"model [bold]{document['id']}[/] {document['name']}: {document['status']}")
        if document.get("parameters"):
            out.print(f"  format {document['format']}, {document['parameters']:,} parameters")
    if document["status"] == "rejected":
        if not as_json:  # with -q too: stdout holds the bare id, stderr says why it was refused
            print_problem(document.get("error") or {})
        raise typer.Exit(JOB_FAILED)


def dataset(
    file: ExistingFile,
    name: Annotated[str | None, typer.Option(help="Display name")] = None,
    url: UrlOption = DEFAULT_URL,
    key: KeyOption = None,
    as_json: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Upload an .npz dataset: arrays named after the model's inputs, plus optional `labels`."""
    with connect(url, key) as client:
        document = client.upload_dataset(file, name=name).raw
    if as_json:
        emit_json(document)
        return
    if quiet:
        typer.echo(document["id"])
        return
    arrays = ", ".join(f"{k} {v.get('dtype')}{v.get('shape')}" for k, v in document["arrays"].items())
    out.print(
        f"dataset [bold]{document['id']}[/] {document['name']}: {document['samples']} samples ({arrays})"
    )


def jobs(
    status: Annotated[str | None, typer.Option(help="Only jobs in this state")] = None,
    limit: Annotated[int, typer.Option(min=1, max=200, help="How many")] = 20,
    url: UrlOption = DEFAULT_URL,
    key: KeyOption = None,
    as_json: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """List your jobs, newest first."""
    with connect(url, key) as client:
        page = client.list_jobs(status=status, limit=limit)
    if as_json:
        emit_json({"items": [job.raw for job in page.items], "next_cursor": page.next_cursor})
    elif quiet:
        for job in page.items:
            typer.echo(job.id)
    else:
        out.print(render.jobs_table([job.raw for job in page.items]))


def status(
    job: JobArg, url: UrlOption = DEFAULT_URL, key: KeyOption = None, as_json: JsonOption = False
) -> None:
    """A job's state, steps and, once it succeeded, its comparison."""
    with connect(url, key) as client:
        document = client.get_job(job).raw
    if as_json:
        emit_json(document)
        return
    out.print(render.steps_table(document))
    out.print(f"progress {document['progress'] * 100:.0f}%  attempts {document['attempts']}")
    if document.get("comparison"):
        out.print(render.comparison_table(document["comparison"]))
        render.print_verdict(out, document["comparison"])
    if document.get("error"):
        print_problem(document["error"])


def report(
    job: JobArg,
    html: Annotated[
        Path | None, typer.Option("--html", help="Save the HTML report (charts included) here")
    ] = None,
    url: UrlOption = DEFAULT_URL,
    key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """The comparison of the original and the compressed model, as a table, JSON or an HTML page."""
    with connect(url, key) as client:
        if html is not None:
            page = client.report_html(job)
            html.write_text(page, encoding="utf-8")
        document = client.report(job).raw
    if html is not None:
        err.print(f"wrote {html} ({len(page.encode()):,} bytes); open it in a browser")
    if as_json:
        emit_json(document)
        return
    if html is None:
        out.print(render.comparison_table(document["comparison"]))
        render.print_verdict(out, document["comparison"])


def download(
    job: JobArg,
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", help="File to write (default: <job id><suffix> here)", dir_okay=False),
    ] = None,
    step: Annotated[
        int | None, typer.Option(help="A step's own artifact (1-based) instead of the final one")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite the output file if it exists")] = False,
    url: UrlOption = DEFAULT_URL,
    key: KeyOption = None,
    as_json: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Download a job's compressed model (checked against its SHA-256); never overwrites without --force."""
    if output is not None and output.exists() and not force:
        raise usage_error(f"{output} exists; pass --force to overwrite it, or choose another -o")
    with connect(url, key) as client:
        document = client.get_job(job)
        artifact_id = document.artifact_id
        if step is not None:
            if not 1 <= step <= len(document.steps):
                raise typer.BadParameter(f"the job has {len(document.steps)} steps", param_hint="--step")
            artifact_id = document.steps[step - 1].artifact_id
        if not artifact_id:
            err.print(f"job {job} has no artifact yet (status {document.status})")
            raise typer.Exit(JOB_FAILED)
        if output is None:
            output = default_output(client.get_artifact(artifact_id), job, step)
            if output.exists() and not force:
                raise usage_error(f"{output} exists; pass --force to overwrite it, or choose another -o")
        saved = client.download(artifact_id, output, overwrite=force)
    if as_json:
        emit_json({**asdict(saved), "artifact_id": artifact_id})
    elif quiet:
        typer.echo(saved.path)
    else:
        out.print(f"saved {saved.path} ({saved.size_bytes:,} bytes, sha256 {saved.sha256[:16]}…)")


def default_output(artifact: Artifact, job: str, step: int | None) -> Path:
    """`<job id>[.step-N]<suffix of the artifact's file name>`, in the current folder."""
    suffix = "".join(Path(artifact.filename or "model.onnx").suffixes) or ".onnx"
    return Path(f"{job}{'' if step is None else f'.step-{step}'}{suffix}")


def cancel(
    job: JobArg, url: UrlOption = DEFAULT_URL, key: KeyOption = None, as_json: JsonOption = False
) -> None:
    """Cancel a job: a queued one at once, a running one as soon as its worker notices."""
    with connect(url, key) as client:
        document = client.cancel_job(job).raw
    if as_json:
        emit_json(document)
    else:
        out.print(f"job {document['id']}: {render.status_text(document['status'])} ({document['stage']})")


def webhook_secret(url: UrlOption = DEFAULT_URL, key: KeyOption = None, as_json: JsonOption = False) -> None:
    """Show the secret that signs your webhook deliveries (X-ModelPress-Signature)."""
    with connect(url, key) as client:
        secret = client.webhook_secret()
    if as_json:
        emit_json(asdict(secret))
    else:
        out.print(secret.secret)
        err.print(f"{secret.header}: {secret.algorithm}")


def techniques(url: UrlOption = DEFAULT_URL, key: KeyOption = None, as_json: JsonOption = False) -> None:
    """List the techniques a --step can name, with their parameters."""
    with connect(url, key) as client:
        items = client.techniques()
    if as_json:
        emit_json([item.raw for item in items])
        return
    for item in items:
        params = ", ".join(item.params_schema.get("properties", {}))
        out.print(f"[bold]{item.name}[/] ({item.queue}): {item.summary}\n  params: {params}")
