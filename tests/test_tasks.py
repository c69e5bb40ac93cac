"""Each Celery task declares its own queue, time limits and retries; none inherits a global limit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from service.catalog import Queue
from service.queue import DELIVER_WEBHOOK_TASK, INGEST_TASK, RUN_JOB_TASK, SWEEP_TASK, TASK_QUEUES
from service.settings import get_settings

ROOT = Path(__file__).resolve().parents[1]


def _declared() -> dict[str, dict[str, object]]:
    script = (
        "import json; from worker.app import app; import worker.tasks\n"
        "conf = app.conf\n"
        "tasks = {n: t for n, t in app.tasks.items() if n.startswith('modelpress.')}\n"
        "print(json.dumps({'global': [conf.task_time_limit, conf.task_soft_time_limit],"
        " 'tasks': {n: {'queue': t.queue, 'soft': t.soft_time_limit, 'hard': t.time_limit,"
        " 'retries': t.max_retries} for n, t in tasks.items()}}))"
    )
    output = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, check=True)
    declared: dict[str, dict[str, object]] = json.loads(output.stdout.splitlines()[-1])
    return declared


def test_every_task_declares_a_queue_limits_and_retries() -> None:
    declared = _declared()
    tasks = declared["tasks"]
    settings = get_settings()

    assert declared["global"] == [None, None]
    assert set(tasks) == {INGEST_TASK, RUN_JOB_TASK, SWEEP_TASK, DELIVER_WEBHOOK_TASK}
    for name, task in tasks.items():
        assert task["queue"] in {queue.value for queue in Queue}, name
        assert 0 < task["soft"] < task["hard"], name  # type: ignore[operator]
        assert isinstance(task["retries"], int), name
    assert {name: tasks[name]["queue"] for name in TASK_QUEUES} == {
        n: q.value for n, q in TASK_QUEUES.items()
    }
    # The housekeeping tasks are bounded in minutes, not by the hours a job's steps may take.
    assert tasks[SWEEP_TASK]["hard"] <= 600 < settings.step_time_limit_s * 10 < tasks[RUN_JOB_TASK]["hard"]  # type: ignore[operator]
    assert tasks[DELIVER_WEBHOOK_TASK]["hard"] <= settings.webhook_timeout_s + 60  # type: ignore[operator]
    assert tasks[RUN_JOB_TASK]["retries"] == tasks[SWEEP_TASK]["retries"] == 0
