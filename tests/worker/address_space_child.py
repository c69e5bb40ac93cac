"""Run as a child process: fine-tuning a deep CNN under an address-space limit; prints the batch size used.

Usage: python -m tests.worker.address_space_child WORKDIR HEADROOM_GIB [--glibc-default]
(`--glibc-default` leaves glibc's dynamic mmap threshold as it is, to show what the probe meets.)
"""

from __future__ import annotations

import contextlib
import json
import resource
import sys
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from onnx import TensorProto, helper, numpy_helper

from engine.bridge import from_onnx
from engine.techniques.train import allocator
from engine.techniques.train.finetune import finetune
from service.catalog.training import TrainingParams

CHANNELS, DEPTH, SAMPLES, SIZE = 32, 48, 64, 32


def _deep_cnn() -> object:
    """48 3x3 convolutions with ReLU: many mid-sized activations, as real CNNs have."""
    rng = np.random.default_rng(0)
    nodes, weights, value = [], [], "x"
    for i in range(DEPTH):
        weight = rng.standard_normal((CHANNELS, CHANNELS, 3, 3)) / (9 * CHANNELS) ** 0.5
        weights.append(numpy_helper.from_array(weight.astype(np.float32), f"w{i}"))
        nodes += [
            helper.make_node("Conv", [value, f"w{i}"], [f"c{i}"], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", [f"c{i}"], [f"r{i}"]),
        ]
        value = f"r{i}"
    shape = ["n", CHANNELS, SIZE, SIZE]
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info(value, TensorProto.FLOAT, shape)],
        weights,
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def main() -> None:
    """Limit the address space to what is mapped now plus the headroom, then fine-tune."""
    workdir, headroom = Path(sys.argv[1]), float(sys.argv[2])
    torch.set_num_threads(2)
    model = _deep_cnn()
    student, teacher = from_onnx(model), from_onnx(model)
    data = workdir / "inputs.npz"
    inputs = np.random.default_rng(1).standard_normal((SAMPLES, CHANNELS, SIZE, SIZE))
    np.savez(data, x=inputs.astype(np.float32))
    status = Path("/proc/self/status").read_text().splitlines()
    mapped = next(line for line in status if line.startswith("VmSize"))
    limit = int(mapped.split()[1]) * 1024 + int(headroom * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.RLIM_INFINITY))
    params = TrainingParams(dataset_id="d", epochs=1, batch_size=SAMPLES, validation_fraction=0)
    keep_default = "--glibc-default" in sys.argv
    patch = (
        mock.patch.object(allocator, "freed_memory_unmapped", contextlib.nullcontext)
        if keep_default
        else contextlib.nullcontext()
    )
    with patch:
        report = finetune(student, teacher, data, params, lambda *_: None)
    sys.stdout.write(json.dumps({"batch_size": report["batch_size"]}) + "\n")


if __name__ == "__main__":
    main()
