"""A typed HTTP client for the ModelPress API (httpx), used by the CLI and usable from scripts."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

FINAL_JOB_STATUSES = frozenset({"succeeded", "failed", "cancelled"})
FINAL_MODEL_STATUSES = frozenset({"ready", "rejected"})
Document = dict[str, Any]


class ApiError(Exception):
    """The server answered with an error; `document` is its RFC 9457 problem document."""

    def __init__(self, status: int, document: Document) -> None:
        super().__init__(f"{status} {document.get('title', '')}: {document.get('detail', '')}")
        self.status = status
        self.document = document


class ConnectionFailed(ApiError):
    """The server could not be reached at all."""


class ModelPressClient:
    """One API key talking to one server; `transport` lets tests or embedders swap the wire."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {api_key}", "User-Agent": "modelpress-cli/0.1"},
            timeout=httpx.Timeout(timeout, connect=10.0),
            transport=transport,
        )

    def __enter__(self) -> ModelPressClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send a request; an error status raises ApiError with the server's problem document."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ConnectionFailed(
                0, {"title": "Cannot reach the server", "detail": f"{self.base_url}: {exc}", "status": 0}
            ) from exc
        if response.is_error:
            raise ApiError(response.status_code, _problem(response))
        return response

    def upload_model(
        self, path: Path, *, name: str | None = None, input_shapes: str | None = None
    ) -> Document:
        """POST /v1/models (streamed multipart); ingest then runs on a worker."""
        data = {key: value for key, value in (("name", name), ("input_shapes", input_shapes)) if value}
        with path.open("rb") as handle:
            return self.request("POST", "/v1/models", files={"file": (path.name, handle)}, data=data).json()

    def upload_dataset(self, path: Path, *, name: str | None = None) -> Document:
        """POST /v1/datasets with an .npz file."""
        with path.open("rb") as handle:
            data = {"name": name} if name else {}
            return self.request("POST", "/v1/datasets", files={"file": (path.name, handle)}, data=data).json()

    def get_model(self, model_id: str) -> Document:
        """GET /v1/models/{id}."""
        return self.request("GET", f"/v1/models/{model_id}").json()

    def wait_model(self, model_id: str, *, interval: float = 0.5, timeout: float = 900.0) -> Document:
        """Poll a model until ingest has accepted or rejected it."""
        deadline = time.monotonic() + timeout
        while True:
            model = self.get_model(model_id)
            if model["status"] in FINAL_MODEL_STATUSES or time.monotonic() > deadline:
                return model
            time.sleep(interval)

    def create_job(self, body: Document, *, idempotency_key: str | None = None) -> Document:
        """POST /v1/jobs; the job runs on a worker."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self.request("POST", "/v1/jobs", json=body, headers=headers).json()

    def get_job(self, job_id: str) -> Document:
        """GET /v1/jobs/{id}: status, stage, progress, steps, comparison."""
        return self.request("GET", f"/v1/jobs/{job_id}").json()

    def job_events(self, job_id: str) -> Iterator[tuple[str, Document]]:
        """GET /v1/jobs/{id}/events: (event name, data) as the server sends them, until the job ends."""
        name = ""
        with self._http.stream(
            "GET", f"/v1/jobs/{job_id}/events", timeout=httpx.Timeout(60, read=90)
        ) as response:
            if response.is_error:
                response.read()
                raise ApiError(response.status_code, _problem(response))
            for line in response.iter_lines():
                if line.startswith("event: "):
                    name = line[len("event: ") :]
                elif line.startswith("data: "):
                    yield name, json.loads(line[len("data: ") :])

    def list_jobs(self, *, status: str | None = None, limit: int = 20, cursor: str | None = None) -> Document:
        """GET /v1/jobs: one page, newest first."""
        params: dict[str, Any] = {"limit": limit}
        params.update({k: v for k, v in (("status", status), ("cursor", cursor)) if v})
        return self.request("GET", "/v1/jobs", params=params).json()

    def cancel_job(self, job_id: str) -> Document:
        """POST /v1/jobs/{id}/cancel."""
        return self.request("POST", f"/v1/jobs/{job_id}/cancel").json()

    def report(self, job_id: str) -> Document:
        """GET /v1/jobs/{id}/report as JSON."""
        return self.request("GET", f"/v1/jobs/{job_id}/report", headers={"Accept": "application/json"}).json()

    def report_html(self, job_id: str) -> str:
        """GET /v1/jobs/{id}/report as a self-contained HTML page."""
        return self.request("GET", f"/v1/jobs/{job_id}/report", headers={"Accept": "text/html"}).text

    def techniques(self) -> list[Document]:
        """GET /v1/techniques: the catalog."""
        items: list[Document] = self.request("GET", "/v1/techniques").json()["items"]
        return items

    def get_artifact(self, artifact_id: str) -> Document:
        """An artifact's metadata (file name, media type, size, SHA-256)."""
        return self.request("GET", f"/v1/artifacts/{artifact_id}").json()

    def webhook_secret(self) -> Document:
        """GET /v1/webhook-secret: the key that signs this tenant's webhooks."""
        return self.request("GET", "/v1/webhook-secret").json()

    def download_artifact(
        self, artifact_id: str, destination: Path, *, on_chunk: Callable[[int, int], None] | None = None
    ) -> Document:
        """Stream an artifact to a file and check it against the ETag (its SHA-256)."""
        digest, written = hashlib.sha256(), 0
        partial = destination.with_name(destination.name + ".part")
        try:
            with self._http.stream("GET", f"/v1/artifacts/{artifact_id}/content") as response:
                if response.is_error:
                    response.read()
                    raise ApiError(response.status_code, _problem(response))
                total = int(response.headers.get("content-length", 0))
                with partial.open("wb") as handle:
                    for chunk in response.iter_bytes(1024 * 1024):
                        handle.write(chunk)
                        digest.update(chunk)
                        written += len(chunk)
                        if on_chunk is not None:
                            on_chunk(written, total)
                expected = response.headers.get("etag", "").strip('"')
        except httpx.TransportError as exc:
            partial.unlink(missing_ok=True)
            raise ConnectionFailed(
                0, {"title": "Download interrupted", "detail": str(exc), "status": 0}
            ) from exc
        if expected and expected != digest.hexdigest():
            partial.unlink(missing_ok=True)
            raise ApiError(
                0, {"title": "Corrupt download", "detail": "SHA-256 differs from the ETag", "status": 0}
            )
        partial.replace(destination)
        return {"path": str(destination), "size_bytes": written, "sha256": digest.hexdigest()}


def _problem(response: httpx.Response) -> Document:
    try:
        document = response.json()
    except ValueError:
        document = None
    if isinstance(document, dict):
        return document
    return {"title": response.reason_phrase, "status": response.status_code, "detail": response.text[:500]}
