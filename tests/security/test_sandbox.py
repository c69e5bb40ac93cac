"""Assume the payload runs: the sandbox child has no network, no secrets, bounded memory and time."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from typing import Any

import pytest

from tests.figures import record
from worker.sandbox import SandboxFailure, SandboxLimits, run_sandboxed

PROBES = "tests.security.sandbox_probes"
LIMITS = SandboxLimits(memory_bytes=1024**3, wall_seconds=60)


def _run(entry: str, limits: SandboxLimits = LIMITS, **kwargs: Any) -> Any:
    return run_sandboxed(f"{PROBES}:{entry}", kwargs, limits=limits)


def _failure(entry: str, limits: SandboxLimits = LIMITS, **kwargs: Any) -> SandboxFailure:
    with pytest.raises(SandboxFailure) as caught:
        _run(entry, limits, **kwargs)
    return caught.value


def _namespaces_allowed() -> bool:
    """Whether this OS lets a process create a network namespace (root, or user namespaces)."""
    probe = "from worker.sandbox.isolation import drop_network; raise SystemExit(0 if drop_network() else 1)"
    return subprocess.run([sys.executable, "-c", probe], check=False).returncode == 0


def test_the_network_is_cut_where_the_os_allows_it() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        outcome = _run("connect", port=listener.getsockname()[1])
        try:
            listener.accept()
            reached = True
        except BlockingIOError:
            reached = False

    isolated = _namespaces_allowed()
    assert reached == (not isolated), outcome
    assert outcome.startswith("refused") == isolated
    record(
        "sandbox_network", {"network namespace available here": isolated, "host listener reached": reached}
    )


def test_the_child_sees_no_secrets_and_runs_in_its_own_folder(monkeypatch: Any) -> None:
    monkeypatch.setenv("MODELPRESS_SECRET_PROBE", "must-not-leak")

    seen = _run("surroundings")
    again = _run("surroundings")

    assert not [name for name in seen["env"] if name.startswith("MODELPRESS_") or "PASSWORD" in name]
    assert seen["cwd_entries"] == [] and seen["cwd"] != again["cwd"], "a fresh, empty folder per call"
    assert seen["sid"], "the child leads its own session, so its whole process tree can be killed"


def test_a_library_allocator_refusing_is_a_resource_limit_that_says_what_to_lower() -> None:
    refused = _failure("allocate_tensor", mib=2048)

    assert refused.slug == "resource-limit"
    assert "1 GiB of address space" in refused.detail and "batch_size" in refused.detail


def test_memory_time_and_crashes_fail_the_call_not_the_caller() -> None:
    memory = _failure("allocate", mib=2048)
    started = time.monotonic()
    timeout = _failure("spin", SandboxLimits(memory_bytes=1024**3, wall_seconds=2))
    stopped_after = time.monotonic() - started
    crash = _failure("crash")
    oom_killed = _failure("killed_by_the_system")
    after = _run("allocate", mib=16)

    assert memory.slug == "resource-limit"
    assert timeout.slug == "timeout" and stopped_after < 10
    assert crash.slug == "worker-crashed"
    assert oom_killed.slug == "resource-limit"
    assert after == 16 * 1024 * 1024
    record(
        "sandbox",
        {
            "2 GiB allocation under a 1 GiB limit": memory.slug,
            "endless loop under a 2 s wall limit": f"{timeout.slug} after {stopped_after:.1f} s",
            "abort() in the child": crash.slug,
            "SIGKILL from outside (as the OOM killer sends)": oom_killed.slug,
            "next call after the failures": "succeeded",
        },
    )
