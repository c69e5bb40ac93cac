"""Finding and killing the processes of a test's own workers."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

SANDBOX_MARK = "engine.child"


def _parent_of(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("PPid:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def descendants(root: int) -> list[int]:
    """Every live process below `root` (children, grandchildren, ...), whatever its session."""
    parents = {int(entry.name): _parent_of(int(entry.name)) for entry in Path("/proc").iterdir()
               if entry.name.isdigit()}  # fmt: skip
    found: list[int] = []
    frontier = [root]
    while frontier:
        current = frontier.pop()
        children = [pid for pid, parent in parents.items() if parent == current]
        found += children
        frontier += children
    return found


def sandbox_children(root: int) -> list[int]:
    """The sandboxed step processes running under a worker."""
    result = []
    for pid in descendants(root):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if SANDBOX_MARK in command:
            result.append(pid)
    return result


def alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def sigkill_group(process: subprocess.Popen[bytes]) -> float:
    """SIGKILL a worker's whole process group (main process, pool, beat); returns the kill time."""
    moment = time.monotonic()
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
    return moment


def wait_gone(pids: list[int], timeout: float) -> bool:
    """True once none of the processes is alive."""
    deadline = time.monotonic() + timeout
    while any(alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
