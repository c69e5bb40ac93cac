"""Recovery after structured pruning on BN-folded models: norms put back and folded away, data-driven
importance, iterative pruning, and the fine-tuning loop's schedule, best epoch and time budget."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from engine.bridge import OnnxModule, from_onnx, to_onnx
from engine.contract import StepContext
from engine.techniques.prune import structured as prune_structured
from engine.techniques.prune.structured_stages import Schedule
from engine.techniques.train import renormalize
from engine.techniques.train.data import load_dataset
from engine.techniques.train.finetune import finetune
from engine.techniques.train.schedule import Clock, rate_factor
from service.catalog.prune import StructuredPruneParams
from service.catalog.training import TrainingParams
from tests import model_zoo

HIDDEN = 64


# Training tests run on one torch thread (tests/worker/conftest.py).
pytestmark = pytest.mark.usefixtures("one_thread")


def run(source: Path, target: Path, data: Path, **params: object) -> dict[str, object]:
    """prune.structured with the training split as dataset "train"; returns the step's metrics."""
    ctx = StepContext(workdir=target.parent, datasets={"train": data})
    validated = StructuredPruneParams.model_validate(params)
    return prune_structured.run(source, target, validated, ctx).metrics


def test_reinserted_norms_reproduce_the_folded_outputs_and_fold_away(
    cnn_onnx: Path, train_npz: Path, tmp_path: Path
) -> None:
    """Identity before training; after training, folding keeps the function and the exported graph's nodes."""
    params = StructuredPruneParams(sparsity=0.5)
    pruned = prune_structured.prune(from_onnx(onnx.load(str(cnn_onnx))), params, [], Schedule(params, None))
    module = pruned.module.eval()
    samples = load_dataset(train_npz, module)
    x = samples.inputs[0][:200]
    with torch.no_grad():
        plain = module(x)
    plain_graph = onnx.load(str(to_onnx(module, tmp_path / "plain.onnx"))).graph

    names = renormalize.insert(module, renormalize.candidates(module, pruned.touched), samples)
    module.eval()
    assert [s.op for s in module.steps].count("BatchNormalization") == len(names) == 2  # stem and block convs
    with torch.no_grad():
        torch.testing.assert_close(module(x), plain, rtol=1e-5, atol=1e-5)

    optimizer = torch.optim.SGD(module.parameters(), lr=0.05)
    module.train()
    for start in range(0, 400, 50):
        optimizer.zero_grad()
        nn.functional.cross_entropy(module(x[start % 200 : start % 200 + 50]), samples.labels[:50]).backward()
        optimizer.step()
    module.eval()
    with torch.no_grad():
        trained = module(x)
    assert not torch.allclose(trained, plain, atol=1e-3)  # the norms and weights did move

    renormalize.fold(module, names)
    assert "BatchNormalization" not in [s.op for s in module.steps]
    with torch.no_grad():
        torch.testing.assert_close(module(x), trained, rtol=1e-4, atol=1e-4)
    exported = onnx.load(str(to_onnx(module, tmp_path / "folded.onnx"))).graph
    assert [n.op_type for n in exported.node] == [n.op_type for n in plain_graph.node]
    session = ort.InferenceSession(str(tmp_path / "folded.onnx"))
    np.testing.assert_allclose(session.run(None, {"x": x.numpy()})[0], trained.numpy(), rtol=1e-4, atol=1e-4)


def test_realigned_norms_give_the_kept_channels_the_original_statistics(
    cnn_onnx: Path, train_npz: Path
) -> None:
    """After realignment the block conv (its inputs pruned) puts out what the original did, per channel."""
    teacher = from_onnx(onnx.load(str(cnn_onnx)))
    params = StructuredPruneParams(sparsity=0.5)
    pruned = prune_structured.prune(teacher, params, [], Schedule(params, None))
    module, samples = pruned.module, load_dataset(train_npz, teacher)
    convs = renormalize.candidates(module, pruned.touched)
    block = next(step for step in convs if "block" in step.name)
    names = {step.name for step in convs}
    original = renormalize.conv_stats(teacher, [s for s in teacher.steps if s.name in names], samples)
    kept = {name: rows for name, rows in pruned.rows.items() if rows is not None}
    before = renormalize.conv_stats(module, [block], samples)[block.name]
    inserted = renormalize.insert(module, convs, samples)
    renormalize.realign(module, inserted, original, kept)
    renormalize.recalibrate(module, inserted, samples)

    norm = next(s for s in module.steps if s.name == block.name + renormalize.SUFFIX)
    after = renormalize.conv_stats(module, [norm], samples)[norm.name]
    wanted = [value[torch.from_numpy(kept[block.name]).long()] for value in original[block.name]]
    scale = float(wanted[1].sqrt().mean())
    assert float((before[0] - wanted[0]).abs().max()) > 0.2 * scale  # pruning moved the outputs
    torch.testing.assert_close(after[0], wanted[0], rtol=0, atol=0.02 * scale)
    torch.testing.assert_close(after[1].sqrt(), wanted[1].sqrt(), rtol=0.02, atol=0.02 * scale)


def test_the_learning_rate_warms_up_then_decays_to_zero() -> None:
    assert rate_factor(0.0, 0.1) < 0.02
    assert rate_factor(0.05, 0.1) == pytest.approx(0.5, abs=0.01)
    assert rate_factor(0.1, 0.1) == pytest.approx(1.0)
    assert rate_factor(0.55, 0.1) == pytest.approx(0.5)
    assert rate_factor(1.0, 0.1) == pytest.approx(0.0, abs=1e-12)
    values = [rate_factor(p / 100, 0.1) for p in range(10, 101)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))
    clock = Clock(total_steps=10, budget_s=1000.0)
    for _ in range(5):
        clock.tick()
    assert clock.progress() == pytest.approx(0.5, abs=1e-3) and not clock.done()


@pytest.fixture(scope="module")
def mlp_teacher(mlp_onnx: Path) -> OnnxModule:
    """The trained digits MLP, bridged."""
    return from_onnx(onnx.load(str(mlp_onnx)))


def test_best_epoch_is_kept_and_training_stops_early(mlp_teacher: OnnxModule, train_npz: Path) -> None:
    """A step size that wrecks the trained model: the untouched weights (epoch 0) are kept, and it stops."""
    student = copy.deepcopy(mlp_teacher)
    params = TrainingParams(dataset_id="train", epochs=10, learning_rate=0.5, patience=2)
    report = finetune(student, mlp_teacher, train_npz, params, lambda *_: None)

    assert report["stopped"] == "early_stopping" and len(report["epochs"]) == 2
    assert report["best_epoch"] == 0
    assert all(e["validation"]["top1"] < report["before"]["top1"] for e in report["epochs"])
    x = torch.from_numpy(model_zoo.digits("test")[0])
    with torch.no_grad():
        torch.testing.assert_close(student(x), mlp_teacher(x))


def test_the_schedule_and_the_seed_make_the_run(mlp_teacher: OnnxModule, train_npz: Path) -> None:
    """Per-epoch learning rates follow warm-up and decay; one seed gives the same figures twice."""
    reports = []
    for seed in (3, 3, 4):
        params = TrainingParams(
            dataset_id="train", epochs=4, learning_rate=1e-3, warmup_fraction=0.3, seed=seed
        )
        reports.append(finetune(copy.deepcopy(mlp_teacher), mlp_teacher, train_npz, params, lambda *_: None))
    rates = [epoch["learning_rate"] for epoch in reports[0]["epochs"]]
    # Epoch 1 ends still warming up (at 25% of the run, warm-up lasts 30%); then the decay.
    assert rates[0] < 0.9e-3 and rates[1] > rates[2] > rates[3] and rates[3] < 0.05e-3
    assert reports[0]["epochs"] == reports[1]["epochs"] and reports[0]["before"] == reports[1]["before"]
    assert reports[0]["epochs"] != reports[2]["epochs"]
    assert reports[0]["held_out"] == round(0.1 * len(model_zoo.digits("train")[0]))


def test_a_time_budget_bounds_the_run(mlp_teacher: OnnxModule, train_npz: Path) -> None:
    """Without epochs the run lasts its budget, and the schedule reaches its end with the time."""
    # The whole split, small batches: its 1000-epoch cap outlasts two seconds on any machine.
    params = TrainingParams(dataset_id="train", time_budget_s=2.0, batch_size=16)
    report = finetune(copy.deepcopy(mlp_teacher), mlp_teacher, train_npz, params, lambda *_: None)

    assert report["stopped"] == "time_budget"
    assert len(report["epochs"]) >= 2 and 2.0 <= report["seconds"] < 30
    assert report["epochs"][-1]["learning_rate"] < 0.1 * params.learning_rate


def test_taylor_importance_finds_the_channels_that_matter(train_npz: Path, tmp_path: Path) -> None:
    """Half the hidden units carry large weights but reach nothing: L1 keeps them, Taylor removes them."""
    model = model_zoo.trained(model_zoo.DigitsMLP)
    first, second = model.net[1], model.net[3]
    with torch.no_grad():
        dead = slice(HIDDEN // 2, HIDDEN)
        first.weight[dead] *= 50
        first.bias[dead] *= 50
        second.weight[:, dead] = 0
    source = model_zoo.export_onnx(model, tmp_path / "dead.onnx")
    tuning = {"dataset_id": "train", "epochs": 1}
    found, ranked_by = {}, {}
    for importance in ("l1", "taylor", "auto"):
        metrics = run(
            source, tmp_path / f"{importance}.onnx", train_npz, sparsity=0.5, importance=importance,
            exclude=["/net/net.3/Gemm"], finetune=tuning,
        )  # fmt: skip
        found[importance], ranked_by[importance] = metrics["recovery"], metrics["importance"]
    original = found["taylor"]["original"]["top1"]
    assert found["taylor"]["after_pruning"]["top1"] == original > 0.5
    assert found["l1"]["after_pruning"]["top1"] < original - 0.3
    # The default ranks by the data when there is a fine-tuning dataset.
    assert ranked_by["auto"] == "taylor" and found["auto"]["after_pruning"]["top1"] == original


def test_default_importance_reads_the_data_only_where_it_helps() -> None:
    """`auto` is Taylor with a fine-tuning dataset and uniform counts; L1 without data or with sensitivity."""
    tuning = {"dataset_id": "train"}
    rankings = [
        StructuredPruneParams.model_validate(params).ranking
        for params in ({"finetune": tuning}, {}, {"finetune": tuning, "allocation": "sensitivity"})
    ]
    assert rankings == ["taylor", "l1", "l1"]


def test_iterative_pruning_reaches_the_same_channels_in_steps(
    cnn_onnx: Path, train_npz: Path, tmp_path: Path
) -> None:
    """Two steps of 16 -> 12 -> 8 channels, each fine-tuned with its share of the epochs."""
    tuning = {"dataset_id": "train", "epochs": 4, "learning_rate": 3e-3}
    metrics = run(
        cnn_onnx, tmp_path / "it.onnx", train_npz, sparsity=0.5, round_to=4, iterations=2, finetune=tuning
    )
    stages = metrics["recovery"]["stages"]
    assert [len(stage["finetune"]["epochs"]) for stage in stages] == [2, 2]
    assert sorted((c["before"], c["after"]) for c in metrics["channels"].values()) == [
        (10, 10),
        (12, 8),
        (12, 8),
    ]
    shapes = sorted(
        tuple(init.dims)
        for init in onnx.load(str(tmp_path / "it.onnx")).graph.initializer
        if len(init.dims) == 4
    )
    assert shapes == [(8, 1, 3, 3), (8, 8, 3, 3)]
    assert all(
        stage["after_pruning"]["top1"] <= stage["finetune"]["epochs"][-1]["validation"]["top1"]
        for stage in stages
    )
    assert metrics["recovery"]["after_recovery"]["top1"] > 0.9


def test_sensitivity_allocation_stays_within_the_uniform_weights(
    mlp_onnx: Path, train_npz: Path, tmp_path: Path
) -> None:
    """Counts chosen per group by measured loss keep no more weights than the same fraction everywhere."""
    tuning = {"dataset_id": "train", "epochs": 1}
    found = {}
    for allocation in ("uniform", "sensitivity"):
        found[allocation] = run(
            mlp_onnx,
            tmp_path / f"{allocation}.onnx",
            train_npz,
            sparsity=0.5,
            allocation=allocation,
            finetune=tuning,
        )
    assert found["sensitivity"]["parameters_after"] <= found["uniform"]["parameters_after"]
    assert found["sensitivity"]["recovery"]["after_recovery"]["top1"] > 0.8


def test_the_report_page_shows_accuracy_after_pruning_and_per_epoch(
    cnn_onnx: Path, train_npz: Path, tmp_path: Path
) -> None:
    """The HTML report tables the held-out top-1: original, after pruning, each epoch, after recovery."""
    from html import unescape

    from service.report.html import render_html
    from service.report.tables import number

    tuning = {"dataset_id": "train", "epochs": 2, "learning_rate": 3e-3}
    metrics = run(cnn_onnx, tmp_path / "out.onnx", train_npz, sparsity=0.5, finetune=tuning)
    step = {
        "index": 0,
        "technique": "prune.structured",
        "status": "succeeded",
        "params": {},
        "metrics": metrics,
    }

    page = render_html({"id": "job", "status": "succeeded", "steps": [step]})

    table = page.split('<table class="recovery">', 1)[1].split("</table>", 1)[0]
    recovery, epochs = metrics["recovery"], metrics["finetune"]["epochs"]
    best = metrics["finetune"]["best_epoch"]
    expected = [
        ("original model", recovery["original"]),
        ("after pruning", recovery["after_pruning"]),
        *[
            (f"fine-tune epoch {e['epoch']}{' (best)' * (e['epoch'] == best)}", e["validation"])
            for e in epochs
        ],
        ("after recovery (exported)", recovery["after_recovery"]),
    ]
    rows = table.split("<tr>")[2:]
    assert len(rows) == len(expected)
    for row, (moment, figures) in zip(rows, expected, strict=True):
        assert f"<td>{moment}</td>" in row and number(figures["top1"], 4) in row
    assert '"after_recovery"' not in page  # tabled, not repeated as raw JSON
    kept = page.split('<table class="kept-whole">', 1)[1].split("</table>", 1)[0]
    assert metrics["kept_whole"] and all(
        f"<code>{entry['node']}</code>" in kept for entry in metrics["kept_whole"]
    )
    assert all(entry["why"] in unescape(kept) for entry in metrics["kept_whole"])
