"""Training that does not fit in memory at the requested batch size: smaller batches, or a clear problem."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
import torch

from engine.bridge import OnnxModule, from_onnx
from engine.errortext import out_of_memory
from engine.techniques.train.data import Samples
from engine.techniques.train.finetune import finetune, lowered_batch
from service.catalog.training import TrainingParams

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = Path(__file__).resolve().parents[2]


def _allocator_limited(largest: int) -> tuple[list[int], object]:
    """An objective whose step fails as torch's allocator does above `largest` samples; sizes seen."""
    sizes: list[int] = []

    def loss(student: OnnxModule, batch: Samples) -> torch.Tensor:
        sizes.append(len(batch))
        if len(batch) > largest:
            raise RuntimeError(
                "[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory: you tried to"
                " allocate 26726400 bytes. Error code 12 (Cannot allocate memory)"
            )
        return torch.nn.functional.mse_loss(student(*batch.inputs), torch.zeros(len(batch), 10))

    return sizes, loss


def test_a_batch_that_does_not_fit_is_lowered_before_any_weight_moves(
    mlp_onnx: Path, train_npz: Path
) -> None:
    teacher = from_onnx(onnx.load(str(mlp_onnx)))
    student = copy.deepcopy(teacher)
    sizes, loss = _allocator_limited(largest=8)
    params = TrainingParams(dataset_id="d", epochs=1, batch_size=32)

    report = finetune(student, teacher, train_npz, params, lambda *_: None, custom=("limited", loss, []))

    # Probes at 32 (too big) then 8 (fits); trains at 4, leaving room for the optimizer's state.
    assert sizes[:2] == [32, 8] and set(sizes[2:]) <= {4, 3, 2, 1}
    assert report["batch_size"] == 4 and report["batch_size_requested"] == 32
    (warning,) = lowered_batch(report)
    assert "batch_size 4 instead of 32" in warning


def test_a_batch_that_fits_is_kept(mlp_onnx: Path, train_npz: Path) -> None:
    teacher = from_onnx(onnx.load(str(mlp_onnx)))
    _, loss = _allocator_limited(largest=64)
    params = TrainingParams(dataset_id="d", epochs=1, batch_size=32)

    report = finetune(
        copy.deepcopy(teacher), teacher, train_npz, params, lambda *_: None, custom=("x", loss, [])
    )

    assert report["batch_size"] == 32 and "batch_size_requested" not in report and not lowered_batch(report)


def test_other_errors_are_not_taken_for_memory() -> None:
    assert out_of_memory(MemoryError())
    assert out_of_memory(RuntimeError("std::bad_alloc"))
    assert out_of_memory(RuntimeError("could not create a primitive"))
    assert not out_of_memory(RuntimeError("Sizes of tensors must match except in dimension 1"))
    assert not out_of_memory(ValueError("can't allocate memory"))


def _batch_under_limit(tmp_path: Path, *flags: str) -> int:
    done = subprocess.run(
        [sys.executable, "-m", "tests.worker.address_space_child", str(tmp_path), "0.45", *flags],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return int(json.loads(done.stdout.strip().splitlines()[-1])["batch_size"])


def test_a_probe_that_ran_out_of_address_space_leaves_room_for_the_next(tmp_path: Path) -> None:
    # A real RLIMIT_AS, as the sandbox sets: the first probe step (64 samples) fails. With glibc's
    # dynamic mmap threshold the memory it freed stays mapped and the probe must drop to 4 samples
    # (training at 2); with large blocks unmapped on free, 16 samples fit (training at 8).
    glibc_default = _batch_under_limit(tmp_path, "--glibc-default")
    unmapped = _batch_under_limit(tmp_path)

    assert unmapped >= 4 and unmapped >= glibc_default, (unmapped, glibc_default)
