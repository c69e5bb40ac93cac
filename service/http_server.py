"""How uvicorn must be run: the h11 parser, whose header-size limit holds before the app sees a byte.

uvicorn's default parser (httptools, when installed) accepts headers of any size; h11 refuses a
request line plus headers longer than `max_incomplete_event_size` with a 400 and closes.
"""

from __future__ import annotations

from typing import Any

from service.settings import Settings


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for `uvicorn.run`."""
    return {"http": "h11", "h11_max_incomplete_event_size": settings.max_header_bytes}


def uvicorn_cli_args(settings: Settings) -> list[str]:
    """The same settings as `uvicorn` command-line flags."""
    return ["--http", "h11", "--h11-max-incomplete-event-size", str(settings.max_header_bytes)]
