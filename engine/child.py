"""The sandbox child: confine itself, import an entry point by name, run it, write its result as JSON.

Invoked as `python -m engine.child ../spec.json` from the box's work folder. SPEC holds
{"entry": "pkg.mod:func", "kwargs": {...}, "box": ..., "landlock": bool}; the result goes to
result.json in the work folder, progress lines to progress.jsonl.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from service.errors import Problem

_progress_file: Path | None = None


def report_progress(fraction: float, message: str) -> None:
    """Append a progress line the parent picks up while the child runs."""
    if _progress_file is None:
        return
    line = json.dumps(
        {"fraction": max(0.0, min(1.0, float(fraction))), "message": message[:200], "t": time.time()}
    )
    with _progress_file.open("a") as handle:
        handle.write(line + "\n")


def _error(problem: Problem) -> dict[str, Any]:
    # The parent rebuilds the problem from its slug (service.failures.problem_for).
    error = {"slug": problem.slug, "detail": problem.detail, "extensions": problem.extensions}
    return {"ok": False, "error": error}


def main(spec_path: Path) -> int:
    """Run the spec; the exit code is 0 whenever a result file was written."""
    global _progress_file
    from engine.confine import confine
    from engine.contract import TechniqueError
    from engine.errortext import out_of_memory, summary
    from service.failures import ResourceLimit, SandboxUnavailable, StepError

    spec = json.loads(spec_path.read_text())
    work = Path.cwd()
    _progress_file = work / "progress.jsonl"
    # Run as `python -m`, this file is __main__: entry points importing report_progress must get
    # this module, whose _progress_file is set, not a second copy where it is None.
    sys.modules.setdefault("engine.child", sys.modules[__name__])
    module_name, _, function_name = spec["entry"].partition(":")
    try:
        # Trusted code up to here; the isolation must hold before the entry's module is even imported.
        confine(Path(spec["box"]), work, module_name, use_landlock=spec["landlock"])
    except OSError:
        traceback.print_exc()
        _write(work, _error(SandboxUnavailable("the sandbox could not confine the step's process")))
        return 0
    try:
        function = getattr(importlib.import_module(module_name), function_name)
        outcome: dict[str, Any] = {"ok": True, "value": function(**spec["kwargs"])}
    except TechniqueError as exc:
        outcome = _error(exc.problem)
    except Exception as exc:  # the parent needs a document for any failure, not a traceback
        # The full text goes to the worker's log only: model code may have put what it read into it.
        traceback.print_exc()
        if out_of_memory(exc):
            outcome = _error(ResourceLimit(_memory_advice()))
        else:
            outcome = _error(StepError(f"the step failed: {summary(exc)}"))
    _write(work, outcome)
    return 0


def _memory_advice() -> str:
    """What ran out, and the parameters that need less."""
    import resource

    size = ""
    # The sandbox caps one of the two (worker/sandbox/isolation.py): the data segment on a GPU worker.
    for kind, what in ((resource.RLIMIT_AS, "address space"), (resource.RLIMIT_DATA, "data segment")):
        limit, _ = resource.getrlimit(kind)
        if limit != resource.RLIM_INFINITY:
            size = f" ({limit / 2**30:.0f} GiB of {what})"
            break
    return (
        f"the step ran out of its memory limit{size}: lower `batch_size` (training), "
        "`max_calibration_samples` or `calibration_batch_size` (calibration), or raise the worker's "
        "MODELPRESS_SANDBOX_MEMORY_BYTES"
    )


def _write(work: Path, outcome: dict[str, Any]) -> None:
    (work / "result.json").write_text(json.dumps(outcome, default=str))


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
