"""prune.structured on real-shaped graphs: a YOLOv8-like detector, a PReLU face net, against Torch-Pruning."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from engine.contract import TechniqueError
from engine.techniques.prune import structured as prune_structured
from tests.worker import bridge_models, detector_models
from tests.worker.prune_outcomes import channels, prune, weights


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The detector with every input dim fixed and with batch 1 fixed but a symbolic size; the face net."""
    folder = tmp_path_factory.mktemp("detectors")
    torch.manual_seed(0)
    yolo = detector_models.randomize_norms(detector_models.TinyYOLOv8())
    face = detector_models.randomize_norms(detector_models.MTCNNStage())
    face_last = detector_models.randomize_norms(detector_models.MTCNNStage(channels_last=True))
    export = detector_models.export
    return {
        "fixed": export(yolo, (1, 3, 64, 64), folder / "fixed.onnx", ["output0"]),
        "sized": export(yolo, (1, 3, 64, 64), folder / "sized.onnx", ["output0"], {2: "height", 3: "width"}),
        "face": export(face, (1, 3, 24, 24), folder / "face.onnx", ["prob", "box"]),
        "face_last": export(face_last, (1, 3, 24, 24), folder / "face_last.onnx", ["prob", "box"]),
    }


def images(size: int, count: int = 1) -> np.ndarray:
    """Random images of a size."""
    return np.random.default_rng(size).standard_normal((count, 3, size, size)).astype(np.float32)


@pytest.mark.parametrize("name", ["fixed", "sized", "face"])
def test_round_trip_through_the_bridge_is_exact(models: dict[str, Path], name: str, tmp_path: Path) -> None:
    """Bridged and re-exported unpruned, each model matches onnxruntime within 1e-5 at its own sizes."""
    size = 24 if name == "face" else 64
    bridge_models.matches_onnxruntime(onnx.load(str(models[name])), {"images": images(size)}, tmp_path)
    original, again = (onnx.load(str(path)).graph.node for path in (models[name], tmp_path / "op.onnx"))
    forms = {"PRelu", "Split", "Softmax"}  # kept as they were: onnxruntime's fusions depend on them
    assert {n.op_type for n in again} & forms == {n.op_type for n in original} & forms


def test_a_detector_with_a_symbolic_size_is_pruned_at_a_size_it_runs_at(
    models: dict[str, Path], tmp_path: Path
) -> None:
    """Batch 1 stays 1; the size is searched (16 breaks the stride-32 neck); C2f splits and heads prune."""
    out = tmp_path / "sized.onnx"
    outcome = prune(models["sized"], out, sparsity=0.5, round_to=4)
    found = channels(outcome)
    assert found["/backbone.2/cv1/cv1.0/Conv"] == (16, 8)  # the conv before the Split: both halves pruned
    assert found["/detect/cv2.0/cv2.0.0/cv2.0.0.0/Conv"] == (64, 32)  # inside the multi-scale head
    assert found["/detect/cv2.0/cv2.0.2/Conv"] == (64, 64)  # the head's outputs keep every channel
    assert outcome.metrics["parameters_after"] < 0.4 * outcome.metrics["parameters_before"]
    session, original = ort.InferenceSession(str(out)), ort.InferenceSession(str(models["sized"]))
    assert [tuple(v.shape) for v in session.get_inputs()] == [(1, 3, "height", "width")]
    for size in (64, 96):
        cells = sum((size // stride) ** 2 for stride in (8, 16, 32))
        got = session.run(None, {"images": images(size)})[0]
        assert got.shape == original.run(None, {"images": images(size)})[0].shape == (1, 7, cells)


def test_a_fixed_shape_detector_prunes_through_split_and_concat(
    models: dict[str, Path], tmp_path: Path
) -> None:
    """Each C2f's first conv loses channels in both Split halves; Split sizes follow; reasons are listed."""
    out = tmp_path / "fixed.onnx"
    outcome = prune(models["fixed"], out, sparsity=0.5, round_to=4)
    found = channels(outcome)
    for block in ("backbone.2", "backbone.4", "backbone.6", "backbone.8", "n1", "n2", "n3", "n4"):
        before, after = found[f"/{block}/cv1/cv1.0/Conv"]
        assert after == before // 2
    known = weights(out)
    splits = [n for n in onnx.load(str(out)).graph.node if n.op_type == "Split" and n.input[1] in known]
    assert {(4, 4), (8, 8), (16, 16)} <= {tuple(known[n.input[1]].tolist()) for n in splits}
    kept = outcome.metrics["kept_whole"]
    reasons = {k["node"]: k["reason"] for k in kept}
    assert reasons["output0"] == "graph outputs"
    assert reasons["/detect/dfl/conv/Conv"] == "convolution over a non-channel axis"
    assert ort.InferenceSession(str(out)).run(None, {"images": images(64)})[0].shape == (1, 7, 84)
    assert outcome.metrics["parameters_after"] < 0.4 * outcome.metrics["parameters_before"]


def test_per_channel_prelu_slopes_are_sliced(models: dict[str, Path], tmp_path: Path) -> None:
    """The face net's PReLU slopes shrink with their convs; only the softmax and box outputs stay whole."""
    out = tmp_path / "face.onnx"
    outcome = prune(models["face"], out, sparsity=0.5)
    found = channels(outcome)
    assert found["/features/features.0/Conv"] == (28, 16)
    assert found["/features/features.6/Conv"] == (64, 32)
    assert found["/dense/dense.1/Gemm"] == (128, 64)
    assert found["/score/Gemm"] == (2, 2) and found["/box/Gemm"] == (4, 4)
    known = weights(out)
    slopes = [known[n.input[1]].size for n in onnx.load(str(out)).graph.node if n.op_type == "PRelu"]
    assert slopes == [16, 24, 32, 64]
    assert {k["reason"] for k in outcome.metrics["kept_whole"]} == {"Softmax", "graph outputs"}
    prob, box = ort.InferenceSession(str(out)).run(None, {"images": images(24)})
    assert prob.shape == (1, 2) and box.shape == (1, 4)
    np.testing.assert_allclose(prob.sum(1), 1.0, atol=1e-5)


def test_a_channels_last_flatten_prunes_the_dense_layers_columns(
    models: dict[str, Path], tmp_path: Path
) -> None:
    """Permuted to (N, W, H, C) and flattened, the last conv's channels are interleaved in the dense
    layer's input: they are pruned with it, every 64th column at once."""
    out = tmp_path / "face_last.onnx"
    outcome = prune(models["face_last"], out, sparsity=0.5)
    assert channels(outcome)["/features/features.6/Conv"] == (64, 32)
    assert {k["reason"] for k in outcome.metrics["kept_whole"]} == {"Softmax", "graph outputs"}
    dense = [w for w in weights(out).values() if w.ndim == 2 and 9 * 32 in w.shape]
    assert len(dense) == 1 and dense[0].size == 64 * 9 * 32  # (kept 64 of 128) x (32 channels x 3 x 3)
    prob, box = ort.InferenceSession(str(out)).run(None, {"images": images(24)})
    assert prob.shape == (1, 2) and box.shape == (1, 4)


def test_sensitivity_costs_count_every_tiled_column(models: dict[str, Path]) -> None:
    """The weights a channel of the channels-last flattened conv carries: its filter, and the dense
    layer's columns at every one of its 3 x 3 positions; all together, both layers' weights."""
    from engine.bridge import from_onnx
    from engine.bridge.channels import analyze
    from engine.techniques.prune.channel_allocation import parameter_cost
    from engine.techniques.prune.channel_plan import group_names

    module = from_onnx(onnx.load(str(models["face_last"])))
    _, shapes = prune_structured._shapes(module)
    graph = analyze(module, shapes, set())
    root = {name: root for root, name in group_names(module, graph).items()}["/features/features.6/Conv"]
    layers = {step.name: module.layer_of(step) for step in module.steps}
    conv, dense = layers["/features/features.6/Conv"], layers["/dense/dense.1/Gemm"]
    assert conv is not None and dense is not None

    assert parameter_cost(module, graph)[root] * 64 == conv.weight.numel() + dense.weight.numel()


def _onnx_name(model: torch.nn.Module, name: str) -> str:
    """The exporter's node name for a conv: its scopes (module lists are not called, so not scopes)."""
    module, scopes, label = model, [], ""
    for part in name.split("."):
        module = module[int(part)] if part.isdigit() else getattr(module, part)  # type: ignore[index]
        label = f"{label}.{part}" if part.isdigit() else part  # a child by index: "cv2.0", "cv2.0.0"
        if not isinstance(module, torch.nn.ModuleList):
            scopes.append(label)
    return "/" + "/".join(scopes) + "/Conv"


def test_channel_counts_match_torch_pruning(tmp_path: Path) -> None:
    """Per conv, as many channels go as Torch-Pruning removes from the same detector (L1, 50%, round_to 4).

    Torch-Pruning 1.6.1 cannot trace a C2f whose second half has two readers (its own YOLOv8 recipe
    swaps C2f for C2f_v2, two convs instead of one conv and a Split): it prunes that form, and each
    C2f's first conv here loses what the two convs lose there together.
    """
    import torch_pruning as tp

    torch.manual_seed(0)
    yolo = detector_models.randomize_norms(detector_models.TinyYOLOv8())
    yolo.detect.raw = True  # per-scale maps, as while training: Torch-Pruning cannot trace the decoding
    source = detector_models.export(yolo, (1, 3, 64, 64), tmp_path / "raw.onnx", ["p3", "p4", "p5"])
    ours = channels(prune(source, tmp_path / "out.onnx", sparsity=0.5, round_to=4))

    reference = detector_models.randomize_norms(detector_models.TinyYOLOv8())
    reference.load_state_dict(yolo.state_dict())
    reference.detect.raw = True
    for block in reference.modules():
        if isinstance(block, detector_models.C2f):
            block.unsplit()
            del block.cv1
    layers = [
        (n, m) for n, m in reference.named_modules() if isinstance(m, torch.nn.Conv2d) and "dfl" not in n
    ]
    convs = {n: m.out_channels for n, m in layers}
    names = {n: _onnx_name(yolo, n.replace("halves.0.0", "cv1.0")) for n in convs if "halves.1" not in n}
    heads = [branch[2] for branch in (*reference.detect.cv2, *reference.detect.cv3)]
    tp.pruner.MetaPruner(
        reference,
        torch.zeros(1, 3, 64, 64),
        importance=tp.importance.MagnitudeImportance(p=1),
        pruning_ratio=0.5,
        ignored_layers=heads,
        round_to=4,
    ).step()
    theirs: dict[str, tuple[int, int]] = {}
    for name, module in layers:  # the DFL conv (not in the per-scale graph) left out
        key = names[name.replace("halves.1.0", "halves.0.0")]
        before, after = theirs.get(key, (0, 0))
        theirs[key] = (before + convs[name], after + module.out_channels)
    assert ours == theirs
    assert sum(before - after for before, after in ours.values()) > 0


def test_export_of_a_training_module_leaves_its_statistics_alone(tmp_path: Path) -> None:
    """Finding a size the model runs at uses eval mode: batch-norm running statistics do not move."""
    from engine.bridge import from_onnx, to_onnx

    torch.manual_seed(0)
    source = bridge_models.export(bridge_models.ConcatCNN().eval(), tmp_path / "bn.onnx")
    module = from_onnx(source).train()
    norms = [m for m in module.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    before = [norm.running_mean.clone() for norm in norms]
    to_onnx(module, tmp_path / "out.onnx")
    assert norms and module.training
    assert all(torch.equal(norm.running_mean, mean) for norm, mean in zip(norms, before, strict=True))


def test_nothing_to_prune_names_the_nodes_and_reasons(models: dict[str, Path], tmp_path: Path) -> None:
    """With every hidden layer excluded, the problem lists each node that kept channels whole, and why."""
    hidden = ["/features/features.0/Conv", "/features/features.3/Conv", "/features/features.6/Conv"]
    with pytest.raises(TechniqueError) as caught:
        prune(models["face"], tmp_path / "out.onnx", exclude=[*hidden, "/dense/dense.1/Gemm"])
    assert caught.value.slug == "nothing-to-prune"
    kept = caught.value.extensions["kept_whole"]
    assert {
        "node": "/features/features.0/Conv",
        "reason": "excluded nodes",
        "why": "named in nodes_to_exclude",
    } in kept
    assert {k["reason"] for k in kept} == {"excluded nodes", "Softmax", "graph outputs"}
    softmax = next(k for k in kept if k["reason"] == "Softmax")
    assert "combines values across the channel axis" in softmax["why"]
