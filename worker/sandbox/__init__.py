"""Run untrusted model work in an isolated child process with resource limits."""

from worker.sandbox.box import Box
from worker.sandbox.runner import SandboxFailure, SandboxLimits, open_box, run_sandboxed

__all__ = ["Box", "SandboxFailure", "SandboxLimits", "open_box", "run_sandboxed"]
