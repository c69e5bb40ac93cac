"""Problems only a worker raises: why a step, an ingest or a job failed, as stored in `error`.

They share the tree (and the document shape) of the API's problems in `service.errors`; a worker
also raises some of those (`InvalidParams`, `DatasetMismatch`, `InvalidDataset`, ...). The model's
or user's doing is 4xx; the service's own failures are 5xx.
"""

from __future__ import annotations

from service.errors import Problem, problem_types


class InvalidModel(Problem):
    status, slug, title = 422, "invalid-model", "The model is not valid"


class UnsafeModel(Problem):
    status, slug, title = 422, "unsafe-model", "The model was refused as unsafe"


class InputShapeRequired(Problem):
    status, slug, title = 422, "input-shape-required", "The model's input shapes are unknown"


class ConversionFailed(Problem):
    status, slug, title = 422, "conversion-failed", "The model could not be converted to ONNX"


class ModelRejected(Problem):
    status, slug, title = 422, "model-rejected", "The model was rejected at ingest"


class ModelNotRunnable(Problem):
    status, slug, title = 422, "model-not-runnable", "The model does not run"


class SignatureMismatch(Problem):
    status, slug, title = 422, "signature-mismatch", "The model's inputs differ from its signature"


class UnsupportedOps(Problem):
    status, slug, title = 422, "unsupported-ops", "The model uses operators this technique does not support"


class UnsupportedModel(Problem):
    status, slug, title = 422, "unsupported-model", "The technique does not support this model's structure"


class UnsupportedInput(Problem):
    status, slug, title = 422, "unsupported-input", "The model has an input this technique does not support"


class DatasetMissing(Problem):
    status, slug, title = 422, "dataset-missing", "A dataset is missing"


class ModelMissing(Problem):
    status, slug, title = 422, "model-missing", "A model the step names is missing"


class DatasetRequired(Problem):
    status, slug, title = 422, "dataset-required", "The step needs a dataset"


class DatasetTooSmall(Problem):
    status, slug, title = 422, "dataset-too-small", "The dataset has too few samples for the step"


class UnknownTensor(Problem):
    status, slug, title = 422, "unknown-tensor", "A named tensor is not in the model"


class NothingToPrune(Problem):
    status, slug, title = 422, "nothing-to-prune", "Nothing in the model can be pruned"


class NothingToQuantize(Problem):
    status, slug, title = 422, "nothing-to-quantize", "Nothing in the model can be quantized"


class PruningUnverified(Problem):
    status, slug, title = 422, "pruning-unverified", "The pruned model could not be verified"


class QuantizationFailed(Problem):
    status, slug, title = 422, "quantization-failed", "The model could not be quantized"


class QuotaExceeded(Problem):
    status, slug, title = 413, "quota-exceeded", "The step's model does not fit the tenant's storage quota"


class ResourceLimit(Problem):
    status, slug, title = 422, "resource-limit", "The step exceeded its memory limit"


class StepTimeout(Problem):
    status, slug, title = 504, "timeout", "The step exceeded its time limit"


class Cancelled(Problem):
    # Never stored: a cancelled job ends `cancelled` without an error; this carries the stop.
    status, slug, title = 409, "cancelled", "The job was cancelled"


class StepError(Problem):
    status, slug, title = 500, "step-error", "The step failed"


class NoOutput(Problem):
    status, slug, title = 500, "no-output", "The technique wrote no model"


class PrunedWeightsRevived(Problem):
    status, slug, title = 500, "pruned-weights-revived", "Fine-tuning revived pruned weights"


class WorkerCrashed(Problem):
    status, slug, title = 500, "worker-crashed", "The step's process crashed"


class SandboxUnavailable(Problem):
    status, slug, title = 500, "sandbox-unavailable", "The step could not be isolated"


class MaxAttempts(Problem):
    status, slug, title = 500, "max-attempts", "Every attempt failed"


def problem_for(slug: str) -> type[Problem]:
    """The class of a problem type named by its slug (as a sandbox child reports it); else StepError."""
    return {kind.slug: kind for kind in problem_types()}.get(slug, StepError)


class TensorRTUnavailable(Problem):
    status, slug, title = (
        503,
        "tensorrt-unavailable",
        "The worker that took the step has no TensorRT",
    )


class TensorRTBuildFailed(Problem):
    status, slug, title = 422, "tensorrt-build-failed", "TensorRT could not build an engine from the model"


class UnboundedDimension(Problem):
    status, slug, title = 422, "unbounded-dimension", "A dynamic input dimension has no bound for an engine"
