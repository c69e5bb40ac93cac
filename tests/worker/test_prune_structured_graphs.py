"""prune.structured follows channel dependencies: concat, depthwise, grouped, attention, exclusions."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import helper, numpy_helper

from engine.bridge import example_inputs, from_onnx, shrink
from engine.bridge.channels import analyze
from engine.contract import StepContext, StepOutcome, TechniqueError
from engine.techniques.prune import structured as prune_structured
from service.catalog.prune import StructuredPruneParams
from tests import model_zoo
from tests.worker import bridge_models


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, mlp_onnx: Path) -> dict[str, Path]:
    """Concat/depthwise/grouped CNN (batch norm kept as nodes), three encoders, and the digits MLP."""
    folder = tmp_path_factory.mktemp("graphs")
    return {
        "concat": bridge_models.export(bridge_models.trained("concat"), folder / "concat.onnx"),
        "encoder": bridge_models.export(bridge_models.trained("encoder"), folder / "encoder.onnx"),
        "bert": bridge_models.export(bridge_models.trained("bert"), folder / "bert.onnx"),
        "bert-width": bridge_models.export(bridge_models.trained("bert-width"), folder / "bert-width.onnx"),
        "mlp": mlp_onnx,
    }


def prune(source: Path, target: Path, **params: object) -> StepOutcome:
    """Run the technique without fine-tuning."""
    ctx = StepContext(workdir=target.parent)
    return prune_structured.run(source, target, StructuredPruneParams.model_validate(params), ctx)


def channels(outcome: StepOutcome) -> dict[str, tuple[int, int]]:
    """Output channels before and after, by node name."""
    return {name: (c["before"], c["after"]) for name, c in outcome.metrics["channels"].items()}


def run(path: Path, name: str = "pixels", batch: int = 3) -> np.ndarray:
    """Outputs for a few test images."""
    images, _ = model_zoo.digits("test")
    return ort.InferenceSession(str(path)).run(None, {name: images[:batch]})[0]


def test_concat_depthwise_and_grouped(models: dict[str, Path], tmp_path: Path) -> None:
    """Branches feeding a Concat shrink; the depthwise conv follows its input; grouped convs stay whole."""
    out = tmp_path / "concat.onnx"
    found = channels(prune(models["concat"], out, sparsity=0.5))
    for node in ("/stem/stem.0/Conv", "/left/left.0/Conv", "/right/right.0/Conv", "/right/right.3/Conv"):
        assert found[node] == (16, 8)
    for node in ("/fuse/fuse.0/Conv", "/grouped/grouped.0/Conv", "/squeeze/squeeze.2/Conv"):
        assert found[node] == (32, 32)
    assert found["/squeeze/squeeze.0/Conv"] == (8, 8)
    weights = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(out)).graph.initializer}
    groups = {n.name: a.i for n in onnx.load(str(out)).graph.node for a in n.attribute if a.name == "group"}
    depthwise = [n for n in onnx.load(str(out)).graph.node if groups.get(n.name, 1) not in (1, 4)]
    assert len(depthwise) == 1 and groups[depthwise[0].name] == 8
    assert weights[depthwise[0].input[1]].shape == (8, 1, 3, 3)
    assert [v.name for v in ort.InferenceSession(str(out)).get_inputs()] == ["pixels"]
    assert run(out).shape == (3, 10)


def test_bn_scale_keeps_the_largest_gammas(models: dict[str, Path]) -> None:
    """With bn_scale the kept channels of a group are those with the largest |gamma|."""
    module = from_onnx(models["concat"])
    with torch.no_grad():
        shapes = {k: tuple(v.shape) for k, v in module.run(example_inputs(module)).items()}
    graph = analyze(module, shapes)
    plan = shrink.plan(module, graph, "bn_scale", 0.5, 8)
    norm = next(s for s in module.steps if s.name == "/left/left.1/BatchNormalization")
    gamma = module.layer_of(norm).weight.detach().abs().numpy()
    root = graph.spaces.find(graph.layouts[norm.inputs[0]].segments[0][0])
    assert sorted(plan.keep[root]) == sorted(np.argsort(-gamma)[:8])
    assert plan.fallback_groups == 1  # the pointwise conv feeding the Concat has no batch norm


def test_encoder_prunes_feed_forward_and_keeps_attention(models: dict[str, Path], tmp_path: Path) -> None:
    """Hidden FFN neurons go; heads sliced out of a fused QKV or masked by a head-shaped mask stay."""
    out = tmp_path / "encoder.onnx"
    found = channels(prune(models["encoder"], out, sparsity=0.5))
    assert found["/up/MatMul"] == (64, 32)
    assert all(found[n][0] == found[n][1] for n in found if n != "/up/MatMul")
    session = ort.InferenceSession(str(out))
    assert [(v.name, v.shape[0]) for v in session.get_outputs()] == [("scores", "n")]
    assert run(out, batch=5).shape == (5, 10)


def test_attention_heads_go_whole_and_q_k_v_together(models: dict[str, Path], tmp_path: Path) -> None:
    """Half the heads go from Q, K, V and the out projection's inputs; the rest compute as before.

    Removing a head equals zeroing its V rows (its attention weights then average zeros), so the
    pruned file must match the original model with those rows zeroed.
    """
    out = tmp_path / "bert.onnx"
    found = channels(prune(models["bert"], out, sparsity=0.5, exclude=["/up/MatMul"]))
    assert {name: found[name] for name in ("/q/MatMul", "/k/MatMul", "/v/MatMul")} == {
        "/q/MatMul": (32, 16),
        "/k/MatMul": (32, 16),
        "/v/MatMul": (32, 16),
    }
    assert all(before == after for name, (before, after) in found.items() if name[1] not in "qkv")

    module = from_onnx(onnx.load(str(models["bert"])))
    with torch.no_grad():
        shapes = {name: tuple(v.shape) for name, v in module.run(example_inputs(module)).items()}
    graph = analyze(module, shapes, {"/up/MatMul"}, trust_dims=True)
    q_step = next(step for step in module.steps if step.name == "/q/MatMul")
    head_space = graph.layouts[q_step.outputs[0]].segments[0][0]
    kept_heads = shrink.plan(module, graph, "l1", 0.5, 8).keep[graph.spaces.find(head_space)]
    assert len(kept_heads) == 2 and graph.spaces.grain[graph.spaces.find(head_space)] == 8

    reference = copy.deepcopy(bridge_models.trained("bert"))
    gone = [head for head in range(4) if head not in kept_heads]
    with torch.no_grad():
        for head in gone:
            reference.v.weight[head * 8 : (head + 1) * 8] = 0
            reference.v.bias[head * 8 : (head + 1) * 8] = 0
        images, _ = model_zoo.digits("test")
        expected = reference(torch.from_numpy(images[:64])).numpy()
    actual = ort.InferenceSession(str(out)).run(None, {"pixels": images[:64]})[0]
    np.testing.assert_allclose(actual, expected, atol=1e-4)
    assert run(out, batch=5).shape == (5, 10)  # the head count is no longer the traced one


def test_head_pruned_and_fine_tuned_runs_at_any_batch(models: dict[str, Path], tmp_path: Path) -> None:
    """After fine-tuning and export the rewritten reshape widths still follow the batch and heads."""
    dataset = model_zoo.write_dataset(tmp_path / "train.npz", input_name="pixels", limit=64)
    params = StructuredPruneParams.model_validate(
        {"sparsity": 0.5, "finetune": {"dataset_id": "d", "epochs": 1, "batch_size": 16}}
    )
    ctx = StepContext(workdir=tmp_path, datasets={"d": dataset})
    outcome = prune_structured.run(models["bert"], tmp_path / "out.onnx", params, ctx)
    assert channels(outcome)["/q/MatMul"] == (32, 16)
    for batch in (1, 7):
        assert run(tmp_path / "out.onnx", batch=batch).shape == (batch, 10)


def test_a_head_size_worked_out_from_the_width_keeps_the_heads(
    models: dict[str, Path], tmp_path: Path
) -> None:
    """Trusting the shapes read off Q, K, V would give a wrong head size: the check catches it."""
    out = tmp_path / "bert-width.onnx"
    found = channels(prune(models["bert-width"], out, sparsity=0.5))
    assert found["/up/MatMul"] == (64, 32)
    assert all(found[name] == (32, 32) for name in ("/q/MatMul", "/k/MatMul", "/v/MatMul"))
    assert run(out, batch=5).shape == (5, 10)


class MeanPooledCNN(torch.nn.Module):
    """Convolutions averaged over space with a mean over (H, W), then a classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(16, 32, 3, padding=1)
        )
        self.classifier = torch.nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.relu(self.features(x)).mean((2, 3)))


def test_a_spatial_mean_keeps_the_channels_prunable(tmp_path: Path) -> None:
    """ReduceMean over H and W (as the dynamo exporter writes adaptive pooling) is channel-wise."""
    source = bridge_models.export(MeanPooledCNN().eval(), tmp_path / "mean.onnx")
    assert "ReduceMean" in {node.op_type for node in onnx.load(str(source)).graph.node}
    found = channels(prune(source, tmp_path / "out.onnx", sparsity=0.5))
    assert found["/features/features.2/Conv"] == (32, 16)
    assert run(tmp_path / "out.onnx", batch=4).shape == (4, 10)


class UpsamplingNet(torch.nn.Module):
    """A small decoder: a strided conv, a ConvTranspose back up, a skip concatenation, per-pixel scores."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = torch.nn.Conv2d(1, 16, 3, padding=1)
        self.down = torch.nn.Conv2d(16, 32, 3, stride=2, padding=1)
        self.up = torch.nn.ConvTranspose2d(32, 16, 3, stride=2, padding=1, output_padding=1)
        self.scores = torch.nn.Conv2d(32, 10, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = torch.relu(self.stem(x))
        up = torch.relu(self.up(torch.relu(self.down(skip))))
        return self.scores(torch.cat([skip, up], 1)).mean((2, 3))


def test_conv_transpose_bridges_and_its_channels_are_pruned(tmp_path: Path) -> None:
    """ConvTranspose keeps its output channels on weight dim 1: they shrink with its readers' inputs."""
    torch.manual_seed(0)
    source = bridge_models.export(UpsamplingNet().eval(), tmp_path / "up.onnx")
    images, _ = model_zoo.digits("test")
    bridge_models.matches_onnxruntime(onnx.load(str(source)), {"pixels": images[:3]}, tmp_path)
    found = channels(prune(source, tmp_path / "out.onnx", sparsity=0.5))
    assert found["/up/ConvTranspose"] == (16, 8)
    assert found["/down/Conv"] == (32, 16) and found["/stem/Conv"] == (16, 8)
    assert run(tmp_path / "out.onnx", batch=3).shape == (3, 10)

    model = onnx.load(str(source))
    node = next(node for node in model.graph.node if node.op_type == "ConvTranspose")
    node.attribute.append(helper.make_attribute("output_shape", [8, 8]))
    onnx.save(model, str(tmp_path / "sized.onnx"))
    with pytest.raises(TechniqueError) as caught:
        prune(tmp_path / "sized.onnx", tmp_path / "sized-out.onnx")
    assert caught.value.slug == "unsupported-ops" and "ConvTranspose with output_shape" in caught.value.detail


def _flatten_and_back() -> onnx.ModelProto:
    """Conv, a flatten to (N, C*H*W) by Reshape [0, -1], ReLU, a Reshape back to the conv's shape, Conv."""
    rng = np.random.default_rng(0)
    weights = {
        "w1": rng.standard_normal((16, 1, 3, 3)).astype(np.float32),
        "w2": rng.standard_normal((4, 16, 1, 1)).astype(np.float32),
        "flat": np.array([0, -1], dtype=np.int64),
    }
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c"], name="first", pads=[1, 1, 1, 1]),
        helper.make_node("Reshape", ["c", "flat"], ["f"]),
        helper.make_node("Relu", ["f"], ["r"]),
        helper.make_node("Shape", ["c"], ["s"]),
        helper.make_node("Reshape", ["r", "s"], ["back"]),
        helper.make_node("Conv", ["back", "w2"], ["y"], name="second"),
    ]
    body = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["n", 1, "h", "w"])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["n", 4, "h", "w"])],
        [numpy_helper.from_array(value, name) for name, value in weights.items()],
    )
    return helper.make_model(body, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)


def test_a_flattened_width_follows_the_image_size(tmp_path: Path) -> None:
    """A pruned channel count folded into C*H*W must not bake the analysed H and W into the model."""
    onnx.save(_flatten_and_back(), str(tmp_path / "flat.onnx"))
    found = channels(prune(tmp_path / "flat.onnx", tmp_path / "out.onnx", sparsity=0.5))
    assert found["first"] == (16, 8)
    original, pruned = (ort.InferenceSession(str(tmp_path / name)) for name in ("flat.onnx", "out.onnx"))
    for size in (8, 12, 20):
        x = np.random.default_rng(size).standard_normal((3, 1, size, size)).astype(np.float32)
        assert (
            pruned.run(None, {"x": x})[0].shape == original.run(None, {"x": x})[0].shape == (3, 4, size, size)
        )


def test_round_to_exclude_and_output_layer(models: dict[str, Path], tmp_path: Path) -> None:
    """Kept counts round up to the multiple; excluded and output layers keep every channel."""
    first, second, last = "/net/net.1/Gemm", "/net/net.3/Gemm", "/net/net.5/Gemm"
    found = channels(prune(models["mlp"], tmp_path / "a.onnx", sparsity=0.3, round_to=16))
    assert found == {first: (64, 48), second: (64, 48), last: (10, 10)}
    found = channels(prune(models["mlp"], tmp_path / "b.onnx", sparsity=0.5, exclude=[first]))
    assert found == {first: (64, 64), second: (64, 32), last: (10, 10)}
    assert run(tmp_path / "b.onnx", name="x").shape == (3, 10)


def _single_gemm() -> onnx.ModelProto:
    weight = numpy_helper.from_array(np.ones((10, 4), np.float32), "w")
    body = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w"], ["y"], transB=1)],
        "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["n", 10])],
        [weight],
    )
    return helper.make_model(body, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)


def test_nothing_prunable_and_unsupported_ops_fail_clearly(tmp_path: Path) -> None:
    """Only an output layer: nothing to prune. An op the bridge lacks: named before any work."""
    onnx.save(_single_gemm(), str(tmp_path / "gemm.onnx"))
    with pytest.raises(TechniqueError) as caught:
        prune(tmp_path / "gemm.onnx", tmp_path / "out.onnx")
    assert caught.value.slug == "nothing-to-prune"
    assert caught.value.extensions["kept_whole_by"] == ["graph outputs"]
    model = _single_gemm()
    model.graph.node.append(helper.make_node("TopK", ["y", "k"], ["values", "indices"]))
    onnx.save(model, str(tmp_path / "topk.onnx"))
    with pytest.raises(TechniqueError) as caught:
        prune(tmp_path / "topk.onnx", tmp_path / "out.onnx")
    assert caught.value.slug == "unsupported-ops" and caught.value.extensions["ops"] == ["TopK"]
