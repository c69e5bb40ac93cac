"""The parent side: start the child, relay progress, enforce wall time, cancel, map failures."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from worker.sandbox.isolation import preexec

POLL_SECONDS = 0.2
# Only what the child needs; secrets such as database URLs stay out of its environment.
_ENV_KEEP = ("PATH", "LANG", "LC_ALL", "HOME", "TMPDIR", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


@dataclass(frozen=True)
class SandboxLimits:
    """Resource limits of one sandboxed call."""

    memory_bytes: int
    wall_seconds: float
    threads: int = 1


class SandboxFailure(Exception):
    """The child failed; `slug`, `detail` and `extensions` become the step's problem document."""

    def __init__(self, slug: str, detail: str, **extensions: Any) -> None:
        super().__init__(detail)
        self.slug, self.detail, self.extensions = slug, detail, extensions


def _child_env(threads: int) -> dict[str, str]:
    env = {key: os.environ[key] for key in _ENV_KEEP if key in os.environ}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[name] = str(threads)
    return env


def run_sandboxed(
    entry: str,
    kwargs: dict[str, Any],
    *,
    workdir: Path,
    limits: SandboxLimits,
    on_progress: Callable[[float, str], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> Any:
    """Run `entry(**kwargs)` in a limited child process and return its JSON result."""
    workdir.mkdir(parents=True, exist_ok=True)
    for name in ("result.json", "progress.jsonl"):
        (workdir / name).unlink(missing_ok=True)
    spec = workdir / "spec.json"
    spec.write_text(json.dumps({"entry": entry, "kwargs": kwargs}))
    cpu_seconds = int(limits.wall_seconds * max(limits.threads, 1)) + 30
    cpu_before = _children_cpu_seconds()
    with (workdir / "child.log").open("ab") as log:
        child = subprocess.Popen(
            [sys.executable, "-m", "worker.sandbox.child", str(spec)],
            cwd=workdir,
            env=_child_env(limits.threads),
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=partial(preexec, limits.memory_bytes, cpu_seconds),
        )
        _watch(child, workdir, limits, on_progress, should_cancel)
    cpu_used = _children_cpu_seconds() - cpu_before
    return _result(child.returncode, workdir, cpu_exhausted=cpu_used >= cpu_seconds - 1)


def _watch(
    child: subprocess.Popen[bytes],
    workdir: Path,
    limits: SandboxLimits,
    on_progress: Callable[[float, str], None] | None,
    should_cancel: Callable[[], bool] | None,
) -> None:
    deadline = time.monotonic() + limits.wall_seconds
    seen = 0
    while child.poll() is None:
        time.sleep(POLL_SECONDS)
        seen = _relay_progress(workdir, seen, on_progress)
        if should_cancel is not None and should_cancel():
            _kill(child)
            raise SandboxFailure("cancelled", "the job was cancelled while this step ran")
        if time.monotonic() > deadline:
            _kill(child)
            raise SandboxFailure(
                "timeout", f"the step ran longer than its limit of {limits.wall_seconds:.0f} s"
            )
    _relay_progress(workdir, seen, on_progress)


def _relay_progress(workdir: Path, seen: int, on_progress: Callable[[float, str], None] | None) -> int:
    path = workdir / "progress.jsonl"
    if on_progress is None or not path.exists():
        return seen
    lines = path.read_text().splitlines()
    for line in lines[seen:]:
        try:
            event = json.loads(line)
        except ValueError:
            break  # a half-written last line: read it next time
        on_progress(float(event["fraction"]), str(event["message"]))
        seen += 1
    return seen


def _kill(child: subprocess.Popen[bytes]) -> None:
    # The child leads its own session, so this also reaches anything it spawned.
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    child.wait()


def _children_cpu_seconds() -> float:
    # The children reaped so far: one sandbox runs at a time per worker process, so the
    # difference across a run is that child's CPU time.
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _result(returncode: int, workdir: Path, *, cpu_exhausted: bool = False) -> Any:
    result_path = workdir / "result.json"
    if result_path.exists():
        outcome = json.loads(result_path.read_text())
        if outcome["ok"]:
            return outcome["value"]
        error = outcome["error"]
        raise SandboxFailure(error["slug"], error["detail"], **error.get("extensions", {}))
    if returncode == -signal.SIGXCPU or (returncode == -signal.SIGKILL and cpu_exhausted):
        raise SandboxFailure("timeout", "the step used up its CPU-time limit and was stopped")
    if returncode == -signal.SIGKILL:
        # Not our CPU limit and not our kill (that raises before): the system's out-of-memory killer.
        raise SandboxFailure(
            "resource-limit", "the step's process was killed by the system, most likely for lack of memory"
        )
    if returncode in (-signal.SIGABRT, -signal.SIGSEGV, -signal.SIGBUS):
        # Native code aborts on failed allocations under the address-space limit, or crashes on bad input.
        raise SandboxFailure(
            "worker-crashed", f"the step's process died with signal {-returncode} (out of memory or a crash)"
        )
    raise SandboxFailure("worker-crashed", f"the step's process exited with code {returncode} and no result")
