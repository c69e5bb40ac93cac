"""Where a measurement was taken: runtime, CPU model, threads and library versions."""

from __future__ import annotations

import platform
from importlib import metadata
from typing import Any

from engine.evaluate.sessions import PROVIDER

_LIBRARIES = ("onnxruntime", "onnx", "numpy", "torch")


def environment(threads: int) -> dict[str, Any]:
    """The comparison's `environment` object; versions come from package metadata, not imports."""
    versions = {name: version for name in _LIBRARIES if (version := _version(name))}
    return {
        "runtime": f"onnxruntime {versions.get('onnxruntime', '?')} {PROVIDER}",
        "cpu": cpu_model(),
        "threads": threads,
        "versions": versions,
    }


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, or what the platform module knows."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None
