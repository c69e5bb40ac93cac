"""Run untrusted model work in a child process with resource limits."""

from worker.sandbox.runner import SandboxFailure, SandboxLimits, run_sandboxed

__all__ = ["SandboxFailure", "SandboxLimits", "run_sandboxed"]
