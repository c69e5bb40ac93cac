"""Which pool each part of a job needs, and whether a live worker can serve it (409 when none can)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from service.catalog import CATALOG, Queue
from service.errors import NoCapableWorker
from service.workers import registry
from service.workers.orm import Worker, WorkerPool

TENSORRT_TECHNIQUES = frozenset({"tensorrt.build"})


@dataclass(frozen=True)
class Needs:
    """What a job asks of the pool: a GPU worker, and TensorRT on it."""

    gpu: bool = False
    tensorrt: bool = False


def needs_of(techniques: Iterable[str], evaluation: dict[str, Any]) -> Needs:
    """A TensorRT build needs a GPU with TensorRT; a CUDA evaluation needs a GPU."""
    names = set(techniques)
    tensorrt = bool(names & TENSORRT_TECHNIQUES)
    gpu = tensorrt or evaluation.get("device") == "cuda" or any(CATALOG[n].queue is Queue.GPU for n in names)
    return Needs(gpu=gpu, tensorrt=tensorrt)


def is_gpu_worker(worker: Worker) -> bool:
    """Consumes the `gpu` queue and found a CUDA device at start (a CPU box on `gpu` is no GPU worker)."""
    return worker.pool == WorkerPool.GPU and worker.gpu_name is not None


def missing(workers: list[Worker], needs: Needs) -> str | None:
    """What no live worker offers, in words; None when one can run everything asked."""
    gpus = [w for w in workers if is_gpu_worker(w)]
    if needs.gpu and not gpus:
        return "no live GPU worker (a worker on the `gpu` queue with a CUDA device)"
    if needs.tensorrt and not any(w.tensorrt_version for w in gpus):
        return "no live GPU worker has TensorRT installed"
    return None


def require(session: Session, needs: Needs, *, timeout_s: float) -> None:
    """Raise 409 no-capable-worker naming what is missing, instead of queueing a job forever."""
    if not needs.gpu:
        return
    lacking = missing(registry.live(session, timeout_s=timeout_s), needs)
    if lacking is not None:
        raise NoCapableWorker(
            f"no live worker can run this job: {lacking}",
            missing="tensorrt" if needs.tensorrt and "TensorRT" in lacking else "gpu",
        )


def gpu_alive(session: Session, *, timeout_s: float) -> bool:
    """Whether any live GPU worker exists (training steps prefer it)."""
    return any(is_gpu_worker(w) for w in registry.live(session, timeout_s=timeout_s))


def pool_for_step(technique: str, *, gpu_available: bool) -> Queue:
    """A GPU step goes to `gpu`; a training step there too while a GPU worker is alive; the rest to `cpu`."""
    spec = CATALOG[technique]
    if spec.queue is Queue.GPU:
        return Queue.GPU
    return Queue.GPU if spec.trains and gpu_available else Queue.CPU


def pool_for_evaluation(evaluation: dict[str, Any]) -> Queue:
    """A CUDA evaluation runs on the GPU pool; everything else on the CPU pool."""
    return Queue.GPU if evaluation.get("device") == "cuda" else Queue.CPU
