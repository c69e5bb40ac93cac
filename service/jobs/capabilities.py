"""Refuse, before queuing, a step whose algorithm no live worker registered it can run."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from service.errors import NoCapableWorker
from service.settings import get_settings
from service.workers import registry

WEIGHT_ONLY = "quantize.weight_only"


def check_step_capabilities(session: Session, steps: list[dict[str, Any]]) -> None:
    """422 no-capable-worker naming the weight-only algorithm no live CPU worker offers.

    Only live workers that reported capabilities are consulted; with none alive the job waits for one
    as any other job does, and a worker lacking the algorithm then fails the step with the same problem.
    """
    wanted = [
        (index, step["params"]["algorithm"])
        for index, step in enumerate(steps)
        if step["technique"] == WEIGHT_ONLY
    ]
    if not wanted:
        return
    reports = registry.live_capabilities(session, timeout_s=get_settings().worker_timeout_s)
    if not reports:
        return
    offered = sorted({name for report in reports for name in report.get("weight_only_algorithms", [])})
    for index, algorithm in wanted:
        if algorithm not in offered:
            raise NoCapableWorker(
                f"step {index} ({WEIGHT_ONLY}): no live worker's onnxruntime offers the '{algorithm}'"
                f" algorithm (offered: {', '.join(offered) or 'none'})",
                step=index,
                algorithm=algorithm,
                available=offered,
            )
