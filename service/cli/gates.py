"""`--fail-on`: which shortfalls of a succeeded job fail the command, and with which exit code."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from service.cli.context import NOT_FASTER, OK, OVER_BUDGET


class FailOn(StrEnum):
    """What makes a succeeded job a failure for a pipeline."""

    BUDGET = "budget"
    SLOWER = "slower"
    ANY = "any"
    NEVER = "never"


def shortfall(comparison: dict[str, Any] | None, fail_on: FailOn) -> tuple[int, str]:
    """The exit code and reason for a succeeded job's result (OK and '' when it passes the gate)."""
    verdict = (comparison or {}).get("verdict") or {}
    # Only an explicit False fails: a job measured without a budget has nothing to miss.
    over_budget = verdict.get("within_accuracy_budget") is False
    slower = verdict.get("faster") is False
    if fail_on in (FailOn.BUDGET, FailOn.ANY) and over_budget:
        return OVER_BUDGET, "the result is over its accuracy budget"
    if fail_on in (FailOn.SLOWER, FailOn.ANY) and slower:
        return NOT_FASTER, "the result is not faster than the original"
    return OK, ""
