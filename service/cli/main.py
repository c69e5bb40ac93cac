"""`modelpress`: the API client (upload, compress, report, ...) and server administration."""

from __future__ import annotations

import typer

from service.cli import commands, compress, keys, logs, serve, workers

app = typer.Typer(no_args_is_help=True, help="ModelPress: compress neural networks behind an HTTP API.")
app.add_typer(keys.app, name="keys")
app.command("serve")(serve.serve)
app.command("migrate")(serve.migrate)
app.command("workers")(workers.workers)
for command in (
    commands.upload,
    commands.dataset,
    compress.compress,
    commands.jobs,
    commands.status,
    commands.report,
    commands.download,
    commands.cancel,
    logs.logs,
    commands.techniques,
    commands.webhook_secret,
):
    app.command(rich_help_panel="Client")(command)

if __name__ == "__main__":
    app()
