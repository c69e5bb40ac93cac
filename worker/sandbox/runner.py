"""The parent side: start the child in its box, relay progress, enforce wall time, cancel, map failures."""

from __future__ import annotations

import json
import logging
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

from engine.confine import gpu_devices
from engine.contract import TechniqueError
from service.failures import Cancelled, ResourceLimit, StepTimeout, WorkerCrashed, problem_for
from worker.sandbox.box import Box
from worker.sandbox.isolation import preexec
from worker.sandbox.layers import Layers, active_layers

log = logging.getLogger("modelpress.sandbox")

POLL_SECONDS = 0.2
_LOG_TAIL_BYTES = 16_000
# Only what the child needs; secrets such as database URLs stay out of its environment.
_ENV_KEEP = ("PATH", "LANG", "LC_ALL", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


@dataclass(frozen=True)
class SandboxLimits:
    """Resource limits of one sandboxed call."""

    memory_bytes: int
    wall_seconds: float
    threads: int = 1


class SandboxFailure(TechniqueError):
    """The child failed, reported or not; its problem becomes the step's or the ingest's `error`."""


def _child_env(threads: int, box: Box) -> dict[str, str]:
    env = {key: os.environ[key] for key in _ENV_KEEP if key in os.environ}
    env.update(
        PYTHONPATH=str(Path(__file__).resolve().parents[2]),
        PYTHONDONTWRITEBYTECODE="1",
        HOME=str(box.work),
        TMPDIR=str(box.work / "tmp"),
    )
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[name] = str(threads)
    return env


def run_sandboxed(
    entry: str,
    kwargs: dict[str, Any],
    *,
    limits: SandboxLimits,
    box: Box | None = None,
    layers: Layers | None = None,
    on_progress: Callable[[float, str], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> Any:
    """Run `entry(**kwargs)` in a limited, isolated child process and return its JSON result.

    File arguments must point into `box` (see Box.admit and Box.output); without a box the child
    gets an empty one of its own.
    """
    layers = layers or active_layers()
    if box is None:
        with Box(layers.user) as own:
            return run_sandboxed(
                entry, kwargs, limits=limits, box=own, layers=layers,
                on_progress=on_progress, should_cancel=should_cancel,
            )  # fmt: skip
    for name in ("result.json", "progress.jsonl"):
        (box.work / name).unlink(missing_ok=True)
    spec = {"entry": entry, "kwargs": kwargs, "box": str(box.root), "landlock": layers.landlock}
    (box.root / "spec.json").write_text(json.dumps(spec))
    (box.root / "spec.json").chmod(0o644)
    cpu_seconds = int(limits.wall_seconds * max(limits.threads, 1)) + 30
    cpu_before = _children_cpu_seconds()
    with (box.root / "child.log").open("wb") as log:
        # The spec's path is relative: a peer reading this process's command line learns no box name.
        child = subprocess.Popen(
            [sys.executable, "-m", "engine.child", "../spec.json"],
            cwd=box.work,
            env=_child_env(limits.threads, box),
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=partial(preexec, limits.memory_bytes, cpu_seconds, layers.user, bool(gpu_devices())),
        )
        try:
            _watch(child, box.work, limits, on_progress, should_cancel)
        except SandboxFailure:
            _log_child_output(box, entry)
            raise
    cpu_used = _children_cpu_seconds() - cpu_before
    try:
        return _result(child.returncode, box.work, cpu_exhausted=cpu_used >= cpu_seconds - 1)
    except SandboxFailure:
        _log_child_output(box, entry)
        raise


def _log_child_output(box: Box, entry: str) -> None:
    """The child's full output (tracebacks, library messages) goes to the worker's log, never to a client."""
    text = (box.root / "child.log").read_bytes()[-_LOG_TAIL_BYTES:].decode("utf-8", "replace")
    log.warning("sandbox.child_failed %s\n%s", entry, text)


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
            raise SandboxFailure(Cancelled, "the job was cancelled while this step ran")
        if time.monotonic() > deadline:
            _kill(child)
            raise SandboxFailure(
                StepTimeout, f"the step ran longer than its limit of {limits.wall_seconds:.0f} s"
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
        raise SandboxFailure(problem_for(error["slug"]), error["detail"], **error.get("extensions", {}))
    if returncode == -signal.SIGXCPU or (returncode == -signal.SIGKILL and cpu_exhausted):
        raise SandboxFailure(StepTimeout, "the step used up its CPU-time limit and was stopped")
    if returncode == -signal.SIGKILL:
        # Not our CPU limit and not our kill (that raises before): the system's out-of-memory killer.
        raise SandboxFailure(
            ResourceLimit, "the step's process was killed by the system, most likely for lack of memory"
        )
    if returncode in (-signal.SIGABRT, -signal.SIGSEGV, -signal.SIGBUS):
        # Native code aborts on failed allocations under the address-space limit, or crashes on bad input.
        raise SandboxFailure(
            WorkerCrashed, f"the step's process died with signal {-returncode} (out of memory or a crash)"
        )
    raise SandboxFailure(WorkerCrashed, f"the step's process exited with code {returncode} and no result")


def open_box() -> Box:
    """A fresh box for the active layers (owned by the sandbox user where the child runs as one)."""
    return Box(active_layers().user)
