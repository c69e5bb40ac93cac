"""optimize's search on real small models: candidates, a pruned model reused, the frontier, the choice."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from engine.contract import StepContext, StepOutcome
from engine.techniques.search import choice
from engine.techniques.search import run as optimize
from engine.techniques.search.candidates import build
from engine.techniques.search.frontier import dominates, pareto
from service.catalog.optimize import PRESETS, OptimizeParams
from tests import model_zoo

FAST = {"timing_budget_s": 0.05, "max_eval_samples": 200}


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory, digits_npz: Path) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("optimize-data")
    return {
        "labelled": digits_npz,
        "unlabelled": model_zoo.write_dataset(folder / "unlabelled.npz", labels=False, limit=200),
    }


def _optimize(
    model: Path, folder: Path, datasets: dict[str, Path], **params: object
) -> tuple[StepOutcome, Path]:
    folder.mkdir()
    output = folder / "best.onnx"
    outcome = optimize.run(
        model,
        output,
        OptimizeParams.model_validate({"dataset_id": "labelled", **FAST, **params}),
        StepContext(workdir=folder, datasets=datasets),
    )
    return outcome, output


def test_a_preset_expands_to_its_settings_and_explicit_keys_win() -> None:
    params = OptimizeParams.model_validate({"preset": "smallest", "dataset_id": "d", "batch_size": 4})
    assert params.objective == PRESETS["smallest"]["objective"] == "size"
    assert params.techniques == PRESETS["smallest"]["techniques"] and params.batch_size == 4


def test_a_gemm_model_tries_dynamic_int8_first_and_chains_each_pruned_model_into_quantizers() -> None:
    params = OptimizeParams(dataset_id="d", prune_ratios=[0.3, 0.5])
    candidates = build(params, {"Gemm", "Relu"}, labelled=True)
    first = candidates[0].steps
    assert [step.technique for step in first] == ["quantize.dynamic"]
    chains = [c for c in candidates if len(c.steps) == 2]
    assert {c.steps[0].params["sparsity"] for c in chains} == {0.3, 0.5}
    # Each ratio's chains share one prune step, so the search builds that pruned model once.
    assert len({c.prefix for c in chains}) == 2
    # CPUs run fp16 slower than fp32: only the size objective tries it.
    assert not any(step.technique == "quantize.fp16" for c in candidates for step in c.steps)
    # Quantization-aware training comes last (it trains), for as many epochs as pruning fine-tunes.
    assert [step.technique for step in candidates[-1].steps] == ["quantize.qat"]
    assert candidates[-1].steps[0].params["training"] == {"dataset_id": "d", "epochs": params.finetune_epochs}
    without = build(OptimizeParams(dataset_id="d", techniques=["quantize.static"]), {"Conv"}, labelled=True)
    assert [c.steps[0].technique for c in without] == ["quantize.static"] * 3
    unlabelled = build(params, {"Gemm"}, labelled=False)
    assert not any(c.steps[0].technique == "prune.structured" for c in unlabelled)


def test_the_frontier_keeps_only_undominated_measured_trials() -> None:
    def row(index: int, drop: float, p50: float, size: int, status: str = "ok") -> dict[str, object]:
        latency = {"p50": p50}
        return {
            "id": index,
            "status": status,
            "accuracy_drop": drop,
            "latency_ms": latency,
            "size_bytes": size,
        }

    rows = [row(0, 0.0, 10, 100), row(1, 0.01, 5, 30), row(2, 0.02, 6, 40), row(3, 0.0, 1, 1, "failed")]
    assert pareto(rows) == [0, 1]
    assert dominates((0, 1, 1), (0, 2, 1)) and not dominates((0, 1, 1), (0, 1, 1))


def test_the_choice_prefers_a_drop_within_budget_at_its_confidence_bound() -> None:
    def row(index: int, speedup: float, drop: float, bound: float) -> dict[str, object]:
        return {"id": index, "status": "ok", "speedup": speedup, "size_bytes": 1, "accuracy_drop": drop,
                "accuracy_drop_bound": bound, "within_budget": drop <= 0.01}  # fmt: skip

    lucky, sure = row(1, 2.6, 0.0, 0.02), row(2, 1.9, 0.0, 0.004)
    original = row(0, 1.0, 0, 0)
    assert choice.choose([original, lucky, sure], "latency", 0.01, upper_bound=True) is sure
    # By default the drop as measured decides (the trial table shows both).
    assert choice.choose([original, lucky, sure], "latency", 0.01) is lucky
    # With no candidate sure to be within budget, the fastest within it as measured is still chosen.
    unsure = row(3, 1.5, 0.005, 0.03)
    assert choice.choose([original, lucky, unsure], "latency", 0.01, upper_bound=True) is lucky


def test_optimize_on_the_digits_mlp_returns_the_fastest_candidate_within_budget(
    mlp_onnx: Path, datasets: dict[str, Path], tmp_path: Path
) -> None:
    outcome, output = _optimize(
        mlp_onnx, tmp_path / "run", datasets, max_accuracy_drop=0.05, prune_ratios=[0.5], finetune_epochs=2
    )
    metrics = outcome.metrics
    trials = metrics["trials"]
    assert trials[0]["steps"] == [] and trials[0]["status"] == "ok"
    techniques = [[step["technique"] for step in row["steps"]] for row in trials]
    assert ["prune.structured", "quantize.dynamic"] in techniques and ["quantize.static"] in techniques
    for row in trials:
        assert row["status"] in ("ok", "failed", "skipped")
        if row["status"] == "ok":
            assert set(row["latency_ms"]) >= {"p50", "p99"} and row["size_bytes"] > 0
    best = trials[metrics["best"]]
    eligible = [r for r in trials[1:] if r["status"] == "ok" and r["within_budget"] and r["speedup"] >= 1.0]
    assert all(r["accuracy_drop_bound"] > r["accuracy_drop"] for r in eligible)
    leader = max(eligible, key=lambda r: (r["speedup"], -r["size_bytes"]))["id"] if eligible else 0
    runoff = metrics.get("runoff")
    if runoff is None:
        assert best["id"] == leader
    else:
        # The candidates close to the leader were timed head to head: the choice is as fast as any of them.
        speeds = {entry["id"]: entry["relative_speed"] for entry in runoff["contenders"]}
        assert list(speeds)[0] == leader and best["id"] == runoff["chosen"] in speeds
        if runoff["conclusive"]:
            assert speeds[best["id"]] >= max(speeds.values()) * (1 - runoff["noise"])
        assert metrics["choice"].startswith("timed head to head")
    assert metrics["choice"] if eligible else "choice" not in metrics
    if best["id"] and best["accuracy_drop_bound"] > 0.05:
        assert any("95% upper bound" in warning for warning in outcome.warnings)
    assert set(metrics["frontier"]) <= {row["id"] for row in trials if row["status"] == "ok"}
    # The artifact is the chosen candidate: its accuracy on the labelled digits is what the table says.
    images, labels = model_zoo.digits()
    session = ort.InferenceSession(str(output), providers=["CPUExecutionProvider"])
    top1 = float(np.mean(session.run(None, {"x": images[:200]})[0].argmax(1) == labels[:200]))
    assert top1 == pytest.approx(best["accuracy"])


def test_a_spent_budget_skips_the_rest_and_keeps_the_original(
    mlp_onnx: Path, datasets: dict[str, Path], tmp_path: Path
) -> None:
    outcome, _ = _optimize(mlp_onnx, tmp_path / "tight", datasets, time_budget_s=0.001)
    metrics = outcome.metrics
    assert metrics["best"] == 0 and all(row["status"] == "skipped" for row in metrics["trials"][1:])
    assert metrics["search_stopped"].startswith("time_budget_s")
    assert outcome.warnings


def test_an_impossible_budget_reports_the_closest_candidate_and_its_miss(
    mlp_onnx: Path, datasets: dict[str, Path], tmp_path: Path
) -> None:
    outcome, _ = _optimize(
        mlp_onnx,
        tmp_path / "impossible",
        datasets,
        eval_dataset_id="unlabelled",
        metric="mse",
        max_accuracy_drop=0.0,
        techniques=["quantize.dynamic"],
    )
    metrics = outcome.metrics
    assert metrics["best"] == 0
    closest = metrics["trials"][metrics["closest"]]
    assert closest["accuracy_drop"] > 0
    assert metrics["misses_by"]["accuracy_drop"] == pytest.approx(closest["accuracy_drop"])


def test_a_failed_build_does_not_stop_the_next_candidates(mlp_onnx: Path, tmp_path: Path) -> None:
    """Each build gets its own folder: a failed one (its folder left behind) used to collide with the next."""
    from engine.contract import TechniqueError
    from engine.techniques.search.candidates import Step

    built: dict[tuple[Step, ...], Path] = {(): mlp_onnx}
    ctx = StepContext(workdir=tmp_path, datasets={})
    with pytest.raises(TechniqueError):
        optimize.build_pipeline((Step("quantize.static", {"dataset_id": "missing"}),), built, ctx, tmp_path)

    dynamic = (Step("quantize.dynamic", {"per_channel": False}),)
    output = optimize.build_pipeline(dynamic, built, ctx, tmp_path)

    assert output.exists() and built[dynamic] == output


def test_the_size_objective_has_no_run_off_and_keeps_no_time_for_one(
    mlp_onnx: Path, datasets: dict[str, Path], tmp_path: Path
) -> None:
    outcome, _ = _optimize(
        mlp_onnx, tmp_path / "size", datasets, objective="size", techniques=["quantize.dynamic"]
    )
    metrics = outcome.metrics
    assert "runoff" not in metrics and "choice" not in metrics
    assert metrics["search_stopped"] == "every candidate was tried"

    def settings(**params: object) -> OptimizeParams:
        return OptimizeParams.model_validate({"dataset_id": "labelled", **params})

    assert optimize.runoff_reserve_s(settings(objective="size")) == 0.0
    # Five sessions' timing, but never more than a tenth of the whole budget.
    assert optimize.runoff_reserve_s(settings(timing_budget_s=1.0, time_budget_s=600)) == 5.0
    assert optimize.runoff_reserve_s(settings(timing_budget_s=1.0, time_budget_s=20)) == pytest.approx(2.0)


def test_a_run_off_that_would_outrun_its_reserve_is_skipped(tmp_path: Path) -> None:
    """Two candidates of 2 s a run: even the fewest rounds take a minute, past a 20 s budget's tenth."""

    def trial(ident: int, speedup: float) -> dict[str, object]:
        return {"id": ident, "status": "ok", "within_budget": True, "speedup": speedup, "size_bytes": 10,
                "accuracy_drop": 0.0, "accuracy_drop_bound": 0.001, "steps": [{}],
                "latency_ms": {"p50": 2000.0}}  # fmt: skip

    trials = [trial(0, 1.0), trial(1, 1.6), trial(2, 1.5)]
    params = OptimizeParams.model_validate({"dataset_id": "labelled", "time_budget_s": 20})
    warnings: list[str] = []

    def unreachable(ident: int) -> Path:
        raise AssertionError("no model is loaded when the run-off is skipped")

    best, choice = optimize._run_off(
        trials,
        unreachable,
        None,
        params,
        StepContext(workdir=tmp_path, datasets={}),
        warnings,  # type: ignore[arg-type]
    )
    assert best["id"] == 1 and not warnings
    assert choice == {
        "choice": "trial 1: the fastest as measured (timing [1, 2] head to head would take over the 2 s"
        " kept for it)"
    }
