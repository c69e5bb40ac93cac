"""The check behind every structured pruning: it must fail on a wrong pruning and on unverifiable outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch

from engine.bridge import equivalence, example_inputs, from_onnx, shrink
from engine.bridge.channels import analyze


def _close(actual: list[float], wanted: list[float]) -> bool:
    return equivalence.same_outputs({"y": torch.tensor(actual)}, {"y": torch.tensor(wanted)})


def test_nan_and_infinity_must_sit_in_the_same_places() -> None:
    nan, inf = float("nan"), float("inf")
    assert _close([1.0, nan, inf], [1.0 + 1e-6, nan, inf])
    assert not _close([1.0, 2.0, inf], [1.0, nan, inf])
    assert not _close([1.0, nan, -inf], [1.0, nan, inf])
    assert not _close([nan, nan], [nan, nan])  # nothing finite to compare: not verified
    assert not _close([1.0, 2.1], [1.0, 2.0])


def test_integer_inputs_are_not_all_the_same() -> None:
    ids, mask = equivalence.random_inputs([torch.zeros(4, 16, dtype=torch.int64), torch.zeros(4, 16)], seed=0)
    assert set(ids.unique().tolist()) == {0, 1} and ids.dtype == torch.int64
    assert mask.std() > 0.5


def test_a_pruning_that_removes_other_channels_is_caught(mlp_onnx: Path) -> None:
    """Slicing channels the reference did not mask must show up as a difference."""
    module = from_onnx(onnx.load(str(mlp_onnx)))
    examples = example_inputs(module)
    with torch.no_grad():
        shapes = {name: tuple(value.shape) for name, value in module.run(examples).items()}
    graph = analyze(module, shapes)
    keep = shrink.plan(module, graph, "l1", 0.5, 8).keep
    wrong = {root: np.setdiff1d(np.arange(graph.spaces.size[root]), kept) for root, kept in keep.items()}
    probe = equivalence.random_inputs(examples, seed=0)

    equivalence.mask_removed_inputs(module, graph, keep)
    wanted = equivalence.outputs(module, probe)
    shrink.apply(module, graph, wrong)
    got = equivalence.outputs(module, probe)
    assert wanted is not None and got is not None
    assert not equivalence.same_outputs(got, wanted)
