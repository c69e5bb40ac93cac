"""The newcomer's flow that the Postman collection runs top to bottom, with what each answer must hold.

Every operation of the OpenAPI document has one place here; the generator refuses to build a
collection that leaves one out, so a new route cannot ship without a request and its assertions.
Checks are JavaScript boolean expressions over `body` (the parsed JSON answer) and `pm`.
"""

from __future__ import annotations

from typing import Any

from service.postman_step import Poll, Step

JOB_BODY: dict[str, Any] = {
    "model_id": "{{modelId}}",
    "steps": [{"technique": "quantize.dynamic", "params": {"per_channel": True}}],
    "evaluation": {"dataset_id": "{{datasetId}}", "metric": "top1", "batch_sizes": [1]},
}
PROBLEM = ("the error is a problem document", "body.type !== undefined && body.status === pm.response.code")

FLOW: tuple[tuple[str, tuple[Step, ...]], ...] = (
    (
        "1. Check the service",
        (
            Step("Liveness", "GET", "/healthz", 200, (("the API process answers", "body.status === 'ok'"),)),
            Step(
                "Readiness",
                "GET",
                "/readyz",
                200,
                (("database and broker are up", "body.status === 'ready'"),),
            ),
            Step(
                "List techniques",
                "GET",
                "/v1/techniques",
                200,
                (
                    (
                        "the catalog names quantize.dynamic",
                        "body.items.some(t => t.name === 'quantize.dynamic')",
                    ),
                ),
            ),
            Step(
                "List worker classes",
                "GET",
                "/v1/workers",
                200,
                (
                    (
                        "a live CPU worker class, without hostnames",
                        "body.items.some(c => c.pool === 'cpu' && c.workers >= 1 && !('hostname' in c))",
                    ),
                ),
            ),
            Step("Prometheus metrics", "GET", "/metrics", 200, accept="text/plain"),
        ),
    ),
    (
        "2. Upload a model and a dataset",
        (
            Step(
                "Upload model",
                "POST",
                "/v1/models",
                201,
                (("the model has an id", "typeof body.id === 'string'"),),
                capture={"modelId": "id"},
                files={"file": "{{modelFile}}"},
                description="Set the collection variable modelFile to an .onnx, .pt2 or TorchScript file.",
            ),
            Step(
                "Get model (waits until ready)",
                "GET",
                "/v1/models/{model_id}",
                200,
                (("the signature was recorded", "body.signature && body.signature.inputs.length > 0"),),
                poll=Poll("status", ("pending",), "ready"),
            ),
            Step(
                "List models",
                "GET",
                "/v1/models",
                200,
                (
                    (
                        "the upload is listed",
                        "body.items.some(m => m.id === pm.collectionVariables.get('modelId'))",
                    ),
                ),
            ),
            Step(
                "Upload dataset",
                "POST",
                "/v1/datasets",
                201,
                (("the dataset has samples", "body.samples > 0"),),
                capture={"datasetId": "id"},
                files={"file": "{{datasetFile}}"},
                description="Set datasetFile to an .npz whose arrays are named after the model's inputs.",
            ),
            Step(
                "Get dataset",
                "GET",
                "/v1/datasets/{dataset_id}",
                200,
                (("arrays are described", "!!body.arrays"),),
            ),
            Step(
                "List datasets",
                "GET",
                "/v1/datasets",
                200,
                (
                    (
                        "the upload is listed",
                        "body.items.some(d => d.id === pm.collectionVariables.get('datasetId'))",
                    ),
                ),
            ),
        ),
    ),
    (
        "3. Compress and compare",
        (
            Step(
                "Create job",
                "POST",
                "/v1/jobs",
                202,
                (("the job is queued", "['queued', 'running'].includes(body.status)"),),
                capture={"jobId": "id"},
                body=JOB_BODY,
                headers={"Idempotency-Key": "{{$guid}}"},
            ),
            Step(
                "Get job (waits until it ends)",
                "GET",
                "/v1/jobs/{job_id}",
                200,
                (("the job has an artifact", "typeof body.artifact_id === 'string'"),),
                capture={"artifactId": "artifact_id"},
                poll=Poll("status", ("queued", "running"), "succeeded", max_polls=300),
            ),
            Step(
                "Job events (Server-Sent Events)",
                "GET",
                "/v1/jobs/{job_id}/events",
                200,
                (("the stream ends with the job", "pm.response.text().includes('event: end')"),),
                accept="text/event-stream",
            ),
            Step(
                "Job logs (paged)",
                "GET",
                "/v1/jobs/{job_id}/logs",
                200,
                (
                    ("lines in order", "body.items.length > 0 && body.items.every((l, i) => l.seq === i)"),
                    ("the finished job's log ends on this page", "body.next_cursor === null"),
                    ("the job succeeded", "body.items[body.items.length - 1].message === 'job succeeded'"),
                ),
            ),
            Step(
                "List jobs",
                "GET",
                "/v1/jobs",
                200,
                (
                    (
                        "the job is listed",
                        "body.items.some(j => j.id === pm.collectionVariables.get('jobId'))",
                    ),
                ),
            ),
            Step(
                "Get report (JSON)",
                "GET",
                "/v1/jobs/{job_id}/report",
                200,
                (("the comparison has a verdict", "!!body.comparison.verdict"),),
                accept="application/json",
            ),
            Step(
                "Get report (HTML page)",
                "GET",
                "/v1/jobs/{job_id}/report",
                200,
                (("it is a page", "pm.response.headers.get('Content-Type').startsWith('text/html')"),),
                accept="text/html",
            ),
            Step(
                "Get model report (every job of the model)",
                "GET",
                "/v1/models/{model_id}/report",
                200,
                (
                    (
                        "the finished job is a point",
                        "body.jobs.some(j => j.job_id === pm.collectionVariables.get('jobId'))",
                    ),
                    ("it recommends", "body.recommendation.length > 0"),
                ),
                accept="application/json",
            ),
            Step(
                "Get artifact",
                "GET",
                "/v1/artifacts/{artifact_id}",
                200,
                (("it has a SHA-256", "body.sha256.length === 64"),),
            ),
            Step(
                "Download artifact",
                "GET",
                "/v1/artifacts/{artifact_id}/content",
                200,
                (("the ETag is the SHA-256", "pm.response.headers.get('ETag').length >= 64"),),
                accept="application/octet-stream",
            ),
            Step(
                "Get webhook secret",
                "GET",
                "/v1/webhook-secret",
                200,
                (("a secret", "body.secret.length > 0"),),
            ),
            Step(
                "Unknown job answers 404",
                "GET",
                "/v1/jobs/{job_id}",
                404,
                (PROBLEM,),
                path_values={"job_id": "00000000-0000-4000-8000-000000000000"},
            ),
        ),
    ),
    (
        "4. Destructive: cancel, rotate, delete (run last)",
        (
            Step(
                "Create a job to cancel",
                "POST",
                "/v1/jobs",
                202,
                capture={"cancelJobId": "id"},
                body=JOB_BODY,
                headers={"Idempotency-Key": "{{$guid}}"},
            ),
            Step(
                "Cancel job",
                "POST",
                "/v1/jobs/{job_id}/cancel",
                202,
                (("cancelled, or stopping", "['cancelled', 'running', 'queued'].includes(body.status)"),),
                path_values={"job_id": "{{cancelJobId}}"},
            ),
            Step(
                "Rotate webhook secret",
                "POST",
                "/v1/webhook-secret/rotate",
                200,
                (("a new secret", "body.secret.length > 0"),),
            ),
            Step(
                "Get cancelled job (waits until it stops)",
                "GET",
                "/v1/jobs/{job_id}",
                200,
                path_values={"job_id": "{{cancelJobId}}"},
                poll=Poll("status", ("queued", "running"), "cancelled"),
            ),
            Step("Delete artifact", "DELETE", "/v1/artifacts/{artifact_id}", 204),
            Step("Delete job", "DELETE", "/v1/jobs/{job_id}", 204),
            Step("Deleted job answers 404", "GET", "/v1/jobs/{job_id}", 404, (PROBLEM,)),
            Step("Delete dataset", "DELETE", "/v1/datasets/{dataset_id}", 204),
            Step("Delete model", "DELETE", "/v1/models/{model_id}", 204),
        ),
    ),
)


def steps() -> list[Step]:
    """Every step of the flow, in order."""
    return [step for _, folder in FLOW for step in folder]
