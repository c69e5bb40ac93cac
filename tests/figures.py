"""Measured reliability figures: with MODELPRESS_RECORD_FIGURES=1 each test records its section.

`make chaos-report` sets it; a plain test run measures and asserts the same things but leaves the
committed figures alone. The figures live in docs/reliability.json (one section per test, replaced
when its test runs) and the Markdown page is rendered from all sections, so a partial run
refreshes only what it measured.
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "docs" / "reliability.json"
PAGE = ROOT / "docs" / "RELIABILITY.md"
RECORD_ENV = "MODELPRESS_RECORD_FIGURES"

TITLES = {
    "hostile_uploads": "Hostile uploads",
    "worker_kill": "Worker SIGKILL mid-job",
    "embedded_recovery": "Embedded mode: worker SIGKILL, supervised restart",
    "redis_restart": "Redis restart while jobs run",
    "postgres_restart": "Postgres restart while jobs run",
    "idempotency": "Idempotency under concurrency",
    "tenancy": "Cross-tenant matrix",
    "contract": "Schemathesis contract run",
    "streaming": "A 2 GiB streamed upload: API memory",
    "upload_cap": "Past the upload cap: 413 without reading the rest",
    "oversized_requests": "Oversized requests: time to a 4xx and API memory growth",
    "quotas": "Quotas",
    "sandbox": "Sandbox limits",
    "sandbox_network": "Sandbox network",
}


def recording() -> bool:
    """Whether this run writes its figures (`make chaos-report`), not just checks them."""
    return os.environ.get(RECORD_ENV, "") == "1"


def record(section: str, figures: dict[str, Any]) -> None:
    """Store one section's figures and re-render the page, when this run records figures."""
    if not recording():
        return
    DATA.parent.mkdir(parents=True, exist_ok=True)
    with (DATA.parent / ".reliability.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = json.loads(DATA.read_text()) if DATA.exists() else {}
        data[section] = {
            "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "host": f"{platform.node()} ({platform.machine()}, Python {platform.python_version()})",
            **figures,
        }
        DATA.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        PAGE.write_text(render(data))


def render(data: dict[str, dict[str, Any]]) -> str:
    """The Markdown page for every recorded section."""
    lines = [
        "# Reliability figures",
        "",
        "Written by `make chaos-report` (the tests in `tests/chaos/` and `tests/security/` with",
        "MODELPRESS_RECORD_FIGURES=1) from what they measured against the real Postgres, Redis,",
        "Celery workers and, for embedded mode, `modelpress serve` itself (the Postgres and Redis",
        "restarts hit a private Postgres cluster and Redis the tests start, never the shared servers);",
        "`make test` runs the same checks without rewriting this page. Each section is replaced",
        "whenever its test records; the raw numbers are in",
        "`docs/reliability.json`. Tests use short leases (6 s) and a 2 s sweep interval; with the",
        "defaults (60 s lease, 15 s sweep) a lost worker's job restarts within about 75 s.",
        "",
    ]
    for section in sorted(data, key=lambda name: list(TITLES).index(name) if name in TITLES else 99):
        figures = data[section]
        lines += [f"## {TITLES.get(section, section)}", "", "| figure | value |", "| --- | --- |"]
        lines += [f"| {key} | {_cell(value)} |" for key, value in figures.items()]
        lines.append("")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, list | dict):
        return json.dumps(value).replace("|", "\\|")
    return str(value).replace("|", "\\|")
