"""`modelpress workers`: every registered worker with its full hardware (reads the database directly)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import typer

from service.db import new_session, utcnow
from service.settings import get_settings
from service.workers import registry


def workers(
    as_json: bool = typer.Option(False, "--json", help="One JSON document instead of a table"),
) -> None:
    """Operators' view: hostnames, pids, queues, hardware, and whether each is still beating."""
    timeout = get_settings().worker_timeout_s
    with new_session() as session:
        rows = registry.everyone(session)
    since = utcnow() - timedelta(seconds=timeout)
    listed: list[dict[str, Any]] = [
        {
            "id": str(row.id),
            "hostname": row.hostname,
            "pid": row.pid,
            "queues": row.queues.split(",") if row.queues else [],
            "pool": row.pool,
            "alive": row.last_seen >= since,
            "started_at": row.started_at.isoformat(),
            "last_seen": row.last_seen.isoformat(),
            "hardware": row.hardware or {},
        }
        for row in rows
    ]
    if as_json:
        print(json.dumps({"items": listed}, indent=2))
        return
    if not listed:
        print("no registered workers")
    for item in listed:
        hw = item["hardware"]
        gpu = hw.get("gpu_name") or "no GPU"
        state = "alive" if item["alive"] else "silent"
        print(
            f"{item['hostname']} pid {item['pid']} [{','.join(item['queues'])}] {item['pool']} {state}: "
            f"{hw.get('cpu_model')} ({' '.join(hw.get('cpu_flags') or []) or 'no int8 flags'}), "
            f"{hw.get('cores')} cores; {gpu}; TensorRT {hw.get('tensorrt_version') or 'absent'}"
        )
