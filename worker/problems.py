"""Problem documents for failed steps, ingests and jobs (stored in `error`)."""

from __future__ import annotations

from typing import Any

from service.errors import problem_document

# slug: (title, status). User-caused failures are 422; the service's own are 5xx.
_KNOWN: dict[str, tuple[str, int]] = {
    "unsupported-format": ("Unsupported model format", 415),
    "invalid-model": ("The model is not valid", 422),
    "unsafe-model": ("The model was refused as unsafe", 422),
    "input-shape-required": ("The model's input shapes are unknown", 422),
    "unsupported-ops": ("The model uses operators this technique does not support", 422),
    "dataset-mismatch": ("The dataset does not match the model", 422),
    "dataset-missing": ("A dataset is missing", 422),
    "invalid-dataset": ("The dataset file is not valid", 422),
    "model-rejected": ("The model was rejected at ingest", 422),
    "quota-exceeded": ("The tenant's storage quota is used up", 413),
    "resource-limit": ("The step exceeded its memory limit", 422),
    "timeout": ("The step exceeded its time limit", 504),
    "worker-crashed": ("The step's process crashed", 500),
    "max-attempts": ("The job failed on every attempt", 500),
    "step-error": ("The step failed", 500),
    "sandbox-unavailable": ("The step could not be isolated", 500),
    "internal-error": ("Internal error", 500),
}


def problem(slug: str, detail: str, **extensions: Any) -> dict[str, Any]:
    """A problem document for a worker-side failure."""
    title, status = _KNOWN.get(slug, ("The step failed", 422))
    return problem_document(slug, title, status, detail, **extensions)


class JobFailed(Exception):
    """The job ends failed with this problem document."""

    def __init__(self, document: dict[str, Any]) -> None:
        super().__init__(document["detail"])
        self.document = document
