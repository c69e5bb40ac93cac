"""ModelPress's pruning techniques called the way a job step calls them, and the hand recipe."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.pruning_setup import PruningReference
from bench.torch_pruning_recipe import Budget, torch_pruning
from engine.contract import StepContext

TRAIN_ID = "train"
SPARSITY = 0.5
ROUND_TO = 8


@dataclass(frozen=True)
class Recipe:
    """One way to compress the reference; `source` names the recipe whose output it starts from."""

    name: str
    who: str
    apply: Callable[[Path, Path], list[str]]
    source: str | None = None


def _context(reference: PruningReference, output: Path) -> StepContext:
    return StepContext(workdir=output.parent, datasets={TRAIN_ID: reference.train_npz})


def recipes(reference: PruningReference, budget: Budget) -> list[Recipe]:
    """Every recipe the pruning benchmark measures, each after the recipe it builds on."""
    from engine.techniques.prune import magnitude as prune_magnitude
    from engine.techniques.prune import nm as prune_nm
    from engine.techniques.prune import structured as prune_structured
    from engine.techniques.quantize import static as quantize_static
    from service.catalog.prune import (
        FinetuneParams,
        MagnitudePruneParams,
        NMPruneParams,
        StructuredPruneParams,
    )
    from service.catalog.quantize_static import StaticQuantParams

    finetune = FinetuneParams(
        dataset_id=TRAIN_ID, epochs=budget.epochs, learning_rate=budget.learning_rate,
        batch_size=budget.batch_size,
    )  # fmt: skip
    structured = StructuredPruneParams(sparsity=SPARSITY, round_to=ROUND_TO, finetune=finetune)
    labels_only = structured.model_copy(
        update={"finetune": finetune.model_copy(update={"distillation": 0.0})}
    )
    static = StaticQuantParams(dataset_id=TRAIN_ID)

    def run_structured(source: Path, output: Path) -> list[str]:
        return prune_structured.run(source, output, structured, _context(reference, output)).warnings

    def run_labels_only(source: Path, output: Path) -> list[str]:
        return prune_structured.run(source, output, labels_only, _context(reference, output)).warnings

    def run_static(source: Path, output: Path) -> list[str]:
        return quantize_static.run(source, output, static, _context(reference, output)).warnings

    def run_magnitude(source: Path, output: Path) -> list[str]:
        # One threshold across layers: per layer, half of the first conv's nine weights per filter go too.
        params = MagnitudePruneParams(sparsity=SPARSITY, scope="global")
        return prune_magnitude.run(source, output, params, _context(reference, output)).warnings

    def run_nm(source: Path, output: Path) -> list[str]:
        return prune_nm.run(source, output, NMPruneParams(), _context(reference, output)).warnings

    def run_torch_pruning(_: Path, output: Path) -> list[str]:
        return torch_pruning(reference, output, SPARSITY, ROUND_TO, budget)

    return [
        Recipe("quantize.static", "ModelPress", run_static),
        Recipe("prune.structured 50% + fine-tuning", "ModelPress", run_structured),
        Recipe("prune.structured 50% + fine-tuning on labels only", "ModelPress", run_labels_only),
        Recipe(
            "prune.structured 50% + fine-tuning -> quantize.static",
            "ModelPress",
            run_static,
            source="prune.structured 50% + fine-tuning",
        ),
        Recipe("Torch-Pruning 50% (L1) + fine-tuning", "hand", run_torch_pruning),
        Recipe(
            "Torch-Pruning 50% (L1) + fine-tuning -> quantize.static",
            "hand, then ModelPress",
            run_static,
            source="Torch-Pruning 50% (L1) + fine-tuning",
        ),
        Recipe("prune.magnitude 50% (global)", "ModelPress", run_magnitude),
        Recipe("prune.nm 2:4", "ModelPress", run_nm),
    ]
