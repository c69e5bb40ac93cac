"""Structured logs: every record (stdlib or structlog) as one JSON line, with bound context ids."""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

from service.settings import Settings

_MARK = "_modelpress_handler"


def _shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,  # request_id in the API, job_id in the worker
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def configure_logging(settings: Settings) -> None:
    """Route stdlib logging and structlog through one handler on stderr (idempotent)."""
    shared = _shared_processors()
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if settings.log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    setattr(handler, _MARK, True)
    root = logging.getLogger()
    # Replace only our own handler: test runners and embedding apps keep theirs.
    root.handlers = [h for h in root.handlers if not getattr(h, _MARK, False)] + [handler]
    root.setLevel(settings.log_level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        if name == "uvicorn.access" and not uvicorn_logger.propagate and not uvicorn_logger.handlers:
            continue  # uvicorn was told --no-access-log: our own request line already covers it
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True


def get_logger(name: str) -> Any:
    """A structlog logger (key-value events) that renders like every other record."""
    return structlog.stdlib.get_logger(name)
