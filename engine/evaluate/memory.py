"""Peak memory of loading a model and running one batch, measured in a fresh child process.

The parent cannot measure this itself: its own peak already includes every earlier model and
import. The child imports numpy and onnxruntime and loads its inputs first, records its resident
size, then creates the session and runs the batch; the answer is its peak resident size minus that
starting point. The peak is read from VmHWM, not ru_maxrss: Linux carries ru_maxrss across fork and
exec, so a child of a large worker would report the worker's size, while VmHWM belongs to the
child's own address space.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

CHILD_TIMEOUT_S = 120.0


def peak_memory_bytes(model_path: str | Path, feeds: Mapping[str, np.ndarray], threads: int) -> int | None:
    """Extra peak resident bytes for creating a session and running `feeds` once; None when it failed."""
    package_root = Path(__file__).resolve().parents[2]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(package_root), os.environ.get("PYTHONPATH")])),
    }
    with tempfile.TemporaryDirectory(prefix="mem-") as scratch:
        feeds_path = Path(scratch) / "feeds.npz"
        np.savez(feeds_path, allow_pickle=False, **feeds)
        command = [
            sys.executable,
            "-m",
            "engine.evaluate.memory",
            str(model_path),
            str(feeds_path),
            str(threads),
        ]
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S, env=env, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
    if done.returncode != 0:
        return None
    try:
        return int(json.loads(done.stdout.strip().splitlines()[-1])["peak_bytes"])
    except (ValueError, KeyError, IndexError):
        return None


def _status_bytes(field: str) -> int:
    """A kibibyte field of /proc/self/status (VmRSS, VmHWM) in bytes."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise OSError(f"/proc/self/status has no {field}")


def _child(model_path: str, feeds_path: str, threads: int) -> int:
    """Run in the child: the growth of peak RSS caused by the session and one run."""
    from engine.evaluate.sessions import feeds_for, make_session
    from engine.npz import load_arrays

    arrays = load_arrays(Path(feeds_path))
    before = _status_bytes("VmRSS")
    session = make_session(model_path, threads)
    session.run(None, feeds_for(session, arrays))
    return max(0, _status_bytes("VmHWM") - before)


if __name__ == "__main__":
    model, feeds, thread_count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    sys.stdout.write(json.dumps({"peak_bytes": _child(model, feeds, thread_count)}) + "\n")
