"""`modelpress logs JOB`: a job's structured log lines, page after page, optionally followed live."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

import typer
from rich.markup import escape

from modelpress import LogLine
from service.cli.context import DEFAULT_URL, JsonOption, KeyOption, UrlOption, connect, out

LEVEL_STYLE = {"debug": "dim", "info": "cyan", "warning": "yellow", "error": "bold red"}


def format_line(line: LogLine) -> str:
    """`12:00:01.123 INFO  step 1  message  key=value ...` with rich markup (steps counted from 1)."""
    when = line.time.strftime("%H:%M:%S.%f")[:12] if line.time else "--:--:--"
    where = "job   " if line.step is None else f"step {line.step + 1}"
    level = f"[{LEVEL_STYLE.get(line.level, 'white')}]{line.level.upper():<7}[/]"
    shown = {name: value for name, value in line.fields.items() if value is not None}
    fields = "  ".join(f"[dim]{escape(name)}=[/]{escape(str(value))}" for name, value in shown.items())
    return f"{when} {level} {where}  {escape(line.message)}" + (f"  {fields}" if fields else "")


def logs(
    job: Annotated[str, typer.Argument(help="Job id")],
    step: Annotated[int | None, typer.Option(min=1, help="Only this step's lines (1-based)")] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines until the job ends")
    ] = False,
    url: UrlOption = DEFAULT_URL,
    key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Print a job's log lines, oldest first; --json prints one JSON object per line (JSON Lines)."""
    with connect(url, key) as client:
        for line in client.logs(job, step=None if step is None else step - 1, follow=follow):
            if as_json:
                typer.echo(json.dumps(asdict(line), default=str))
            else:
                out.print(format_line(line), soft_wrap=True, highlight=False)
