"""Live workers grouped into hardware classes: what a tenant can target, without hostnames or ids."""

from __future__ import annotations

from collections import Counter
from typing import Any

from service.workers.capability import is_gpu_worker
from service.workers.orm import Worker

# The facts that make two workers interchangeable for a tenant's job; nothing that names a machine.
CLASS_FIELDS = (
    "cpu_model",
    "cpu_flags",
    "gpu_name",
    "gpu_memory_bytes",
    "compute_capability",
    "cuda_version",
    "torch_version",
    "onnxruntime_version",
    "tensorrt_version",
    "execution_providers",
)


def hardware_class(worker: Worker) -> dict[str, Any]:
    """One worker's class: its pool (gpu only with a CUDA device) and its hardware facts."""
    facts = worker.hardware or {}
    pool = "gpu" if is_gpu_worker(worker) else "cpu"
    return {"pool": pool, **{name: facts.get(name) for name in CLASS_FIELDS}}


def classes(workers: list[Worker]) -> list[dict[str, Any]]:
    """Distinct classes with how many live workers each has, GPU classes first."""
    counted: Counter[str] = Counter()
    seen: dict[str, dict[str, Any]] = {}
    for worker in workers:
        each = hardware_class(worker)
        key = repr(sorted((k, repr(v)) for k, v in each.items()))
        counted[key] += 1
        seen.setdefault(key, each)
    ordered = sorted(seen, key=lambda k: (seen[k]["pool"] != "gpu", str(seen[k]["gpu_name"]), k))
    return [{**seen[key], "workers": counted[key]} for key in ordered]
