"""The machine a run happened on: CPU, the ISA features that decide int8 speed, library versions, load."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from typing import Any

# CPU features that decide int8 and float16 speed on x86.
ISA_FLAGS = (
    "avx2",
    "avx512f",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_int8",
    "amx_bf16",
)
LIBRARIES = ("onnxruntime", "onnx", "torch", "numpy", "scikit-learn")


def machine() -> dict[str, Any]:
    """CPU model, cores, the ISA flags that matter, library versions and current load."""
    model, flags = "unknown", set()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
    except OSError:
        model = platform.processor() or platform.machine()
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {
        "cpu": model,
        "cores": len(os.sched_getaffinity(0)),
        "isa": {flag: flag in flags for flag in ISA_FLAGS},
        "versions": versions,
        "python": platform.python_version(),
        "load": os.getloadavg()[0],
    }
