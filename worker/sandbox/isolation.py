"""What the forked child applies before exec: no network, limits, an unprivileged user."""

from __future__ import annotations

import ctypes
import os
import resource
import signal

CLONE_NEWNET = 0x40000000
PR_SET_PDEATHSIG = 1


def drop_network() -> bool:
    """Move into a fresh network namespace (no interfaces up); False where the OS refuses."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.unshare(CLONE_NEWNET) == 0
    except (OSError, AttributeError):
        return False


def die_with_parent() -> None:
    """Have the kernel SIGKILL this process when the worker that started it dies (Linux only).

    The child leads its own session, so killing the worker's process group does not reach it;
    without this an orphaned step would run on, unsupervised, after its worker was killed.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return


def apply_limits(memory_bytes: int, cpu_seconds: int, *, gpu: bool = False) -> None:
    """Cap memory, CPU time and core dumps for this process and its children.

    Memory is capped as address space, except where a GPU is present: CUDA reserves address space for
    unified memory far beyond any cap a step could have (it fails to start under one), so there the
    cap is on the data segment, the private writable memory the process actually takes.
    """
    limit = resource.RLIMIT_DATA if gpu else resource.RLIMIT_AS
    resource.setrlimit(limit, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 5))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    os.setsid()


def drop_user(uid: int, gid: int) -> None:
    """Become the unprivileged sandbox user, with no supplementary groups (needs root)."""
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)


def preexec(memory_bytes: int, cpu_seconds: int, user: tuple[int, int] | None, gpu: bool = False) -> None:
    """Runs in the forked child before exec: network first (it needs root), then limits, then the user.

    The parent-death signal comes last: the kernel clears it when the user changes.
    """
    drop_network()
    apply_limits(memory_bytes, cpu_seconds, gpu=gpu)
    if user is not None:
        drop_user(*user)
    die_with_parent()
