"""Entry points the sandbox tests run as hostile code inside the sandbox child."""

from __future__ import annotations

import os
import signal
import socket
from typing import Any

MIB = 1024 * 1024


def connect(port: int) -> str:
    """Try to reach a listener on the host's loopback; the outcome as text."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=3):
            return "connected"
    except OSError as error:
        return f"refused: {type(error).__name__}: {error}"


def surroundings() -> dict[str, Any]:
    """What the child can see of its environment and where it runs."""
    return {
        "env": sorted(os.environ),
        "cwd": os.getcwd(),
        "cwd_entries": sorted(set(os.listdir()) - {"tmp", "progress.jsonl"}),
        "sid": os.getsid(0) == os.getpid(),
    }


def allocate(mib: int) -> int:
    """Allocate and touch `mib` MiB."""
    block = bytearray(mib * MIB)
    return len(block)


def allocate_tensor(mib: int) -> int:
    """Allocate `mib` MiB through torch's allocator, which raises RuntimeError, not MemoryError."""
    import torch

    return torch.ones(mib * MIB, dtype=torch.uint8).numel()


def spin() -> None:
    """Burn CPU forever."""
    while True:
        pass


def crash() -> None:
    """Die the way native code does on a failed allocation."""
    os.abort()


def killed_by_the_system() -> None:
    """End the way the kernel's out-of-memory killer ends a process."""
    os.kill(os.getpid(), signal.SIGKILL)


def read_file(path: str) -> str:
    """Try to read a file the sandbox must not show; the outcome names the error, or holds the text."""
    try:
        with open(path, "rb") as handle:
            return "read: " + handle.read(4096).decode("latin-1")
    except OSError as error:
        return f"refused: {type(error).__name__}"
