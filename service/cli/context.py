"""What every client command shares: server and key options, consoles, and exit codes."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.console import Console

from modelpress import Client, ProblemError

OK, JOB_FAILED, USAGE_ERROR, SERVER_ERROR = 0, 1, 2, 3
# A job that succeeded but whose result misses what --fail-on asks for (CI gates on these).
OVER_BUDGET, NOT_FASTER = 4, 5
DEFAULT_URL = "http://127.0.0.1:8000"

PIPED_WIDTH = 140


def _console(*, stderr: bool) -> Console:
    """A console as wide as the terminal, or PIPED_WIDTH when output goes to a file or CI log."""
    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, width=None if stream.isatty() else PIPED_WIDTH)


out = _console(stderr=False)
err = _console(stderr=True)

UrlOption = Annotated[
    str, typer.Option("--url", envvar="MODELPRESS_URL", help="Server URL", rich_help_panel="Connection")
]
KeyOption = Annotated[
    str | None,
    typer.Option(
        "--key",
        envvar="MODELPRESS_API_KEY",
        help="API key (default: $MODELPRESS_API_KEY)",
        show_default=False,
        rich_help_panel="Connection",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="Print only the id (or path), for scripts")]


def usage_error(message: str) -> typer.Exit:
    """Print a usage problem and return the exit to raise (code 2)."""
    err.print(f"[bold red]error:[/] {message}")
    return typer.Exit(USAGE_ERROR)


@contextmanager
def connect(url: str, key: str | None) -> Iterator[Client]:
    """An SDK client for the command; server and HTTP errors become exit code 3 with the problem printed."""
    if not key:
        raise usage_error("no API key: pass --key or set MODELPRESS_API_KEY")
    client = Client(url, key)
    try:
        yield client
    except ProblemError as exc:
        print_problem(exc.document, exc.status)
        raise typer.Exit(SERVER_ERROR) from None
    except FileExistsError as exc:  # the SDK refuses to overwrite a file that appeared meanwhile
        raise usage_error(str(exc)) from None
    finally:
        client.close()


def print_problem(document: dict[str, Any], status: int | None = None) -> None:
    """Show a problem document on stderr: title and detail first, the whole document below."""
    title = document.get("title", "Error")
    code = document.get("status", status)
    err.print(f"[bold red]{code} {title}[/]: {document.get('detail', '')}", soft_wrap=True)
    err.print_json(json.dumps(document, default=str))


def emit_json(value: Any) -> None:
    """Machine output: compact-safe JSON on stdout, nothing else."""
    typer.echo(json.dumps(value, indent=2, default=str))
