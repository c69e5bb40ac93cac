"""Check a job request against the catalog, the tenant's objects and the model's signature."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from service.catalog import CATALOG, Queue, referenced_dataset_ids
from service.catalog.optimize import with_evaluation_defaults
from service.catalog.training import too_small_to_split
from service.datasets import service as datasets_service
from service.datasets.inspect import check_against_signature
from service.datasets.labels import check_label_range
from service.errors import Conflict, InvalidParams, UnknownTechnique
from service.failures import DatasetTooSmall
from service.jobs.schemas import JobCreate
from service.jobs.step_models import check_step_models
from service.models import service as models_service
from service.models.orm import Model, ModelStatus


def normalized_steps(request: JobCreate) -> tuple[list[dict[str, Any]], Queue]:
    """Validate each step's params (422 before anything is queued) and pick the job's queue."""
    steps: list[dict[str, Any]] = []
    queue = Queue.CPU
    if len(request.steps) > 1 and any(step.technique == "optimize" for step in request.steps):
        raise InvalidParams(
            "optimize searches whole pipelines itself: it must be the job's only step",
            errors=[{"loc": ["steps"], "msg": "optimize with other steps", "type": "value_error"}],
        )
    evaluation = request.evaluation.model_dump(mode="json")
    for index, step in enumerate(request.steps):
        spec = CATALOG.get(step.technique)
        if spec is None:
            raise UnknownTechnique(
                f"step {index}: unknown technique '{step.technique}'", known=sorted(CATALOG), step=index
            )
        raw = with_evaluation_defaults(step.params, evaluation) if spec.name == "optimize" else step.params
        try:
            params = spec.params.model_validate(raw)
        except ValidationError as exc:
            prefix = f"step {index} ({step.technique}): "
            raise InvalidParams.from_validation(exc.errors(), prefix=prefix, step=index) from None
        if not spec.writes_onnx and index < len(request.steps) - 1:
            raise InvalidParams(
                f"step {index} ({step.technique}) writes a {spec.output_suffix} file, which no later step"
                " can read; make it the job's last step",
                step=index,
            )
        if spec.queue is Queue.GPU:
            queue = Queue.GPU
        if step.technique == "tensorrt.build" and index != len(request.steps) - 1:
            # Every technique reads ONNX; an engine is an end product.
            raise InvalidParams(f"step {index} (tensorrt.build): it must be the job's last step", step=index)
        steps.append({"technique": spec.name, "params": params.model_dump(mode="json")})
    return steps, queue


def check_references(
    *, session: Session, tenant_id: uuid.UUID, request: JobCreate, steps: list[dict[str, Any]]
) -> Model:
    """The model and every dataset named must be the tenant's; datasets must fit a ready model."""
    model = models_service.get_model(session=session, tenant_id=tenant_id, model_id=request.model_id)
    if model.status == ModelStatus.REJECTED:
        raise Conflict(
            f"model {model.id} was rejected at ingest and cannot be compressed", model_error=model.error
        )
    dataset_ids = [value for step in steps for value in referenced_dataset_ids(step["params"])]
    if request.evaluation.dataset_id:
        dataset_ids.append(str(request.evaluation.dataset_id))
    datasets = {
        _as_uuid(dataset_id): datasets_service.get_dataset(
            session=session, tenant_id=tenant_id, dataset_id=_as_uuid(dataset_id)
        )
        for dataset_id in dict.fromkeys(dataset_ids)
    }
    check_step_models(session=session, tenant_id=tenant_id, model=model, steps=steps)
    _check_splits(steps, {str(key): dataset.arrays for key, dataset in datasets.items()})
    if model.status == ModelStatus.READY and model.signature:
        _check_language_metric(request, model.signature)
        _check_steps_on_decoders(steps, model.signature)
        for dataset in datasets.values():
            check_against_signature(dataset.arrays, model.signature)
        for dataset_id, metric, where in _labelled_uses(request, steps):
            check_label_range(
                datasets[_as_uuid(dataset_id)].arrays, model.signature, metric=metric, where=where
            )
    if request.evaluation.dataset_id:
        evaluation = datasets[_as_uuid(str(request.evaluation.dataset_id))]
        _check_metric_has_labels(request, evaluation.arrays)
    elif request.evaluation.metric:
        _check_metric_has_labels(request, {})
    return model


def _check_splits(steps: list[dict[str, Any]], arrays: dict[str, dict[str, Any]]) -> None:
    """422 where a step would hold out too few samples (or keep too few) of its dataset."""
    for index, step in enumerate(steps):
        params = CATALOG[step["technique"]].params.model_validate(step["params"])
        for dataset_id, fraction in params.held_out_splits():
            # A scalar array (one value for every sample) has no samples axis to count.
            shapes = [spec["shape"] for spec in arrays.get(dataset_id, {}).values() if spec.get("shape")]
            samples = int(shapes[0][0]) if shapes and isinstance(shapes[0][0], int) else None
            if samples is not None and too_small_to_split(samples, fraction):
                raise DatasetTooSmall(
                    f"step {index} ({step['technique']}): the dataset's {samples} samples are too few to "
                    f"hold out {fraction:g} of them for validation: upload more, or set "
                    "validation_fraction to 0",
                    step=index,
                    samples=samples,
                )


def _check_metric_has_labels(request: JobCreate, arrays: dict[str, Any]) -> None:
    # Without labels the evaluation can only report fidelity: a named metric would be silently dropped.
    metric = request.evaluation.metric
    if metric == "perplexity":
        if "input_ids" not in arrays:
            raise InvalidParams(
                "evaluation.metric 'perplexity' needs an evaluation dataset with an 'input_ids' array"
                " of token ids",
                errors=[{"loc": ["evaluation", "metric"], "msg": "needs token ids", "type": "value_error"}],
            )
        return
    if metric and "labels" not in arrays:
        raise InvalidParams(
            f"evaluation.metric '{metric}' needs an evaluation dataset with a 'labels' array; "
            "drop the metric to measure fidelity to the original model instead",
            errors=[{"loc": ["evaluation", "metric"], "msg": "needs labelled data", "type": "value_error"}],
        )


def _check_language_metric(request: JobCreate, signature: dict[str, Any]) -> None:
    """Perplexity scores next-token logits: only a model ingest recognized as a decoder has them."""
    if request.evaluation.metric == "perplexity" and signature.get("decoder") is None:
        raise InvalidParams(
            "evaluation.metric 'perplexity' is for language models: this model's signature is not a"
            " decoder's (inputs input_ids and attention_mask, output logits)",
            errors=[{"loc": ["evaluation", "metric"], "msg": "not a decoder", "type": "value_error"}],
        )


# Techniques that feed the dataset's arrays to the model as they are, or bridge it to torch: neither
# handles a decoder's KV-cache inputs yet. Its tools are weight-only, dynamic and fp16 quantization and
# magnitude / N:M pruning without fine-tuning, measured by perplexity and generation speed.
NOT_FOR_DECODERS = (
    "optimize", "quantize.auto", "quantize.static", "quantize.qat", "distill", "prune.structured",
    "export.torch",
)  # fmt: skip
FINETUNED = ("prune.magnitude", "prune.nm")


def _check_steps_on_decoders(steps: list[dict[str, Any]], signature: dict[str, Any]) -> None:
    """A step that cannot run on a language model is refused with what to use instead."""
    if signature.get("decoder") is None:
        return
    for index, step in enumerate(steps):
        technique = step["technique"]
        finetuned = technique in FINETUNED and (step["params"] or {}).get("finetune")
        if technique in NOT_FOR_DECODERS or finetuned:
            what = f"{technique} with finetune" if finetuned else technique
            raise InvalidParams(
                f"step {index} ({what}) does not handle language models yet: this model is a decoder"
                " (KV-cache inputs). Use quantize.weight_only (int4: block_size 32 with"
                " float_zero_points, or algorithm gptq with a dataset_id of token ids), quantize.dynamic,"
                " quantize.fp16, or prune.magnitude / prune.nm without finetune, with evaluation.metric"
                " 'perplexity' to measure each",
                errors=[
                    {"loc": ["steps", index, "technique"], "msg": "not for decoders", "type": "value_error"}
                ],
            )


def _labelled_uses(request: JobCreate, steps: list[dict[str, Any]]) -> list[tuple[str, str | None, str]]:
    """(dataset id, metric, where) for every dataset whose labels the job scores or trains on."""
    uses: list[tuple[str, str | None, str]] = []
    if request.evaluation.dataset_id:
        uses.append((str(request.evaluation.dataset_id), request.evaluation.metric, "evaluation dataset"))
    for index, step in enumerate(steps):
        params = CATALOG[step["technique"]].params.model_validate(step["params"])
        where = f"step {index} ({step['technique']}) dataset"
        uses.extend((dataset_id, metric, where) for dataset_id, metric in params.labelled_datasets())
    return uses


def _as_uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidParams(f"'{value}' is not a dataset id") from None
