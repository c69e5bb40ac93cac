"""What this worker process runs on: CPU model and int8 flags, cores, memory, GPU and runtime versions."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger("modelpress.workers")

# The CPU flags that decide how fast int8 runs: VNNI and AMX are what onnxruntime's int8 kernels use.
INT8_FLAGS = {
    "avx2": "avx2",
    "avx512f": "avx512f",
    "avx512_vnni": "avx512_vnni",
    "avx_vnni": "avx_vnni",
    "amx_int8": "amx_int8",
    "amx_bf16": "amx_bf16",
}
TENSORRT_DISTRIBUTIONS = ("tensorrt", "tensorrt-cu12", "tensorrt-cu13", "tensorrt-cu11")


def probe() -> dict[str, Any]:
    """Everything a registry row reports; each part that cannot be read is None, never a guess."""
    return {
        **cpu_info(Path("/proc/cpuinfo")),
        "cores": os.cpu_count(),
        "memory_bytes": memory_bytes(Path("/proc/meminfo")),
        **gpu_info(),
        "onnxruntime_version": _version("onnxruntime") or _version("onnxruntime-gpu"),
        "execution_providers": execution_providers(),
        "tensorrt_version": tensorrt_version(),
    }


def cpu_info(cpuinfo: Path) -> dict[str, Any]:
    """CPU model name and which int8-relevant flags it has, from a /proc/cpuinfo-format file."""
    model, flags = None, set[str]()
    try:
        text = cpuinfo.read_text()
    except OSError:
        return {"cpu_model": None, "cpu_flags": []}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and model is None:
            model = value.strip()
        elif key == "flags" and not flags:
            flags = set(value.split())
    return {
        "cpu_model": model,
        "cpu_flags": sorted(name for flag, name in INT8_FLAGS.items() if flag in flags),
    }


def memory_bytes(meminfo: Path) -> int | None:
    """Total memory from a /proc/meminfo-format file (given there in KiB)."""
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def gpu_info() -> dict[str, Any]:
    """The first visible GPU through torch.cuda (one worker per GPU: CUDA_VISIBLE_DEVICES picks it)."""
    info: dict[str, Any] = {
        "torch_version": None,
        "cuda_version": None,
        "gpu_name": None,
        "gpu_memory_bytes": None,
        "compute_capability": None,
        "gpu_count": 0,
        "driver_version": None,
    }
    try:
        import torch
    except ImportError:
        return info
    info["torch_version"] = torch.__version__
    info["cuda_version"] = torch.version.cuda  # None on a CPU build of torch
    try:
        if not torch.cuda.is_available():
            return info
        props = torch.cuda.get_device_properties(0)
        info.update(
            gpu_name=props.name,
            gpu_memory_bytes=int(props.total_memory),
            compute_capability=f"{props.major}.{props.minor}",
            gpu_count=torch.cuda.device_count(),
            driver_version=driver_version(),
        )
    except Exception as exc:  # a broken driver: report no GPU rather than crash the worker
        log.warning("torch.cuda reports an unusable GPU: %s", exc)
    return info


def driver_version() -> str | None:
    """The NVIDIA driver's version as the kernel module reports it (no extra library needed)."""
    try:
        first = Path("/proc/driver/nvidia/version").read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    words = first.split()
    return next((word for word in words if word[:1].isdigit() and "." in word), None)


def execution_providers() -> list[str]:
    """onnxruntime's available execution providers (CUDAExecutionProvider only with onnxruntime-gpu)."""
    try:
        import onnxruntime
    except ImportError:
        return []
    return list(onnxruntime.get_available_providers())


def tensorrt_version() -> str | None:
    """The installed TensorRT Python package's version, read from its metadata (no CUDA init)."""
    if importlib.util.find_spec("tensorrt") is None:
        return None
    return next((v for name in TENSORRT_DISTRIBUTIONS if (v := _version(name))), None)


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None
