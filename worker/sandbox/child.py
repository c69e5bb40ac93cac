"""The sandbox child: import an entry point by name, run it, write its result as JSON.

Invoked as `python -m worker.sandbox.child SPEC.json`. SPEC holds {"entry": "pkg.mod:func",
"kwargs": {...}}; the result goes to result.json beside it, progress lines to progress.jsonl.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

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


def _error(slug: str, detail: str, **extensions: Any) -> dict[str, Any]:
    return {"ok": False, "error": {"slug": slug, "detail": detail, "extensions": extensions}}


def main(spec_path: Path) -> int:
    """Run the spec; the exit code is 0 whenever a result file was written."""
    global _progress_file
    from worker.techniques.base import TechniqueError

    spec = json.loads(spec_path.read_text())
    _progress_file = spec_path.parent / "progress.jsonl"
    # Run as `python -m`, this file is __main__: entry points importing report_progress must get
    # this module, whose _progress_file is set, not a second copy where it is None.
    sys.modules.setdefault("worker.sandbox.child", sys.modules[__name__])
    module_name, _, function_name = spec["entry"].partition(":")
    try:
        function = getattr(importlib.import_module(module_name), function_name)
        outcome: dict[str, Any] = {"ok": True, "value": function(**spec["kwargs"])}
    except TechniqueError as exc:
        outcome = _error(exc.slug, exc.detail, **exc.extensions)
    except MemoryError:
        outcome = _error("resource-limit", "the step ran out of its memory limit")
    except Exception as exc:  # the parent needs a document for any failure, not a traceback
        traceback.print_exc()
        outcome = _error("step-error", f"{type(exc).__name__}: {exc}"[:2000])
    (spec_path.parent / "result.json").write_text(json.dumps(outcome, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
