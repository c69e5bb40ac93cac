"""`Client`: the ModelPress API from synchronous Python code (httpx)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from modelpress import calls
from modelpress.downloads import PartialFile, refuse_existing
from modelpress.errors import ConnectionProblem, ProblemError, problem_of, unreachable
from modelpress.events import Event, EventDecoder, apply
from modelpress.results import (
    FINAL_MODEL_STATUSES,
    Artifact,
    Dataset,
    Download,
    Job,
    LogLine,
    Model,
    Page,
    Report,
    Technique,
    WebhookSecret,
)
from modelpress.settings import DEFAULT_TIMEOUT_S, EVENTS_TIMEOUT, USER_AGENT, deadline_of, past, remaining

Document = dict[str, Any]
ProgressCallback = Callable[[Job], None]
ChunkCallback = Callable[[int, int], None]


class Client:
    """One API key talking to one server. Errors raise ProblemError with the RFC 9457 fields.

    >>> with Client("http://127.0.0.1:8000", "mp_...") as mp:
    ...     job = mp.wait(mp.submit_job(model_id, ["quantize.dynamic"]).id, on_progress=print)
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {api_key}", "User-Agent": USER_AGENT},
            timeout=httpx.Timeout(timeout, connect=10.0),
            transport=transport,
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Any request; an error status raises ProblemError, an unreachable server ConnectionProblem."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise unreachable(self.base_url, exc) from exc
        if response.is_error:
            raise problem_of(response)
        return response

    def _send(self, call: calls.Call) -> httpx.Response:
        options: dict[str, Any] = {"params": call.params, "headers": call.headers}
        if call.json is not None:
            options["json"] = call.json
        if call.upload is None:
            return self.request(call.method, call.path, **options)
        with call.upload.open("rb") as handle:
            return self.request(
                call.method, call.path, files={"file": (call.upload.name, handle)}, data=call.form, **options
            )

    def _json(self, call: calls.Call) -> Any:
        return self._send(call).json()

    @contextmanager
    def _stream(self, call: calls.Call, timeout: httpx.Timeout | None = None) -> Iterator[httpx.Response]:
        options: dict[str, Any] = {"headers": call.headers}
        if timeout is not None:
            options["timeout"] = timeout
        try:
            with self._http.stream(call.method, call.path, **options) as response:
                if response.is_error:
                    response.read()
                    raise problem_of(response)
                yield response
        except httpx.TransportError as exc:
            raise unreachable(self.base_url, exc, "The connection broke off") from exc

    # Models and datasets

    def upload_model(self, path: Path, *, name: str | None = None, input_shapes: str | None = None) -> Model:
        """Upload a model file (.onnx, .zip, .pt2, TorchScript .pt); a worker then ingests it."""
        return Model.from_document(self._json(calls.upload_model(path, name=name, input_shapes=input_shapes)))

    def get_model(self, model_id: str) -> Model:
        """A model by id."""
        return Model.from_document(self._json(calls.get_model(model_id)))

    def wait_model(self, model_id: str, *, interval: float = 0.5, timeout: float = 900.0) -> Model:
        """Poll until ingest accepts (ready) or rejects the model, or until the timeout."""
        deadline = deadline_of(timeout)
        while True:
            model = self.get_model(model_id)
            if model.status in FINAL_MODEL_STATUSES or past(deadline):
                return model
            time.sleep(interval)

    def upload_dataset(self, path: Path, *, name: str | None = None) -> Dataset:
        """Upload an .npz whose arrays are named after the model's inputs, plus optional `labels`."""
        return Dataset.from_document(self._json(calls.upload_dataset(path, name=name)))

    # Jobs

    def submit_job(
        self,
        model_id: str,
        steps: list[Document | str],
        *,
        evaluation: Document | None = None,
        callback_url: str | None = None,
        idempotency_key: str | None = None,
    ) -> Job:
        """Submit a job: steps are technique names or {"technique": ..., "params": {...}}."""
        body = calls.job_body(model_id, steps, evaluation=evaluation, callback_url=callback_url)
        return self.create_job(body, idempotency_key=idempotency_key)

    def create_job(self, body: Document, *, idempotency_key: str | None = None) -> Job:
        """POST a job body as is. A fresh Idempotency-Key is used when none is given, and a request
        whose answer was lost on the way is sent once more with the same key: the server replays it."""
        call = calls.create_job(body, idempotency_key=idempotency_key or str(uuid.uuid4()))
        try:
            return Job.from_document(self._json(call))
        except ConnectionProblem:
            return Job.from_document(self._json(call))

    def get_job(self, job_id: str) -> Job:
        """A job by id: status, stage, progress, steps, comparison."""
        return Job.from_document(self._json(calls.get_job(job_id)))

    def list_jobs(
        self,
        *,
        status: str | None = None,
        model_id: str | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> Page[Job]:
        """One page of jobs, newest first; pass its next_cursor for the next one."""
        page = self._json(calls.list_jobs(status=status, model_id=model_id, limit=limit, cursor=cursor))
        return Page([Job.from_document(item) for item in page["items"]], page["next_cursor"])

    def cancel_job(self, job_id: str) -> Job:
        """Cancel a job: a queued one at once, a running one as soon as its worker notices."""
        return Job.from_document(self._json(calls.cancel_job(job_id)))

    def events(self, job_id: str, *, timeout: float | None = None) -> Iterator[Event]:
        """The job's Server-Sent Events as they come, until it ends, the server closes the stream or
        `timeout` seconds have passed (checked at each line, keep-alives included)."""
        deadline = deadline_of(timeout)
        decoder = EventDecoder()
        with self._stream(calls.job_events(job_id), EVENTS_TIMEOUT) as response:
            for line in response.iter_lines():
                if past(deadline):
                    return
                event = decoder.feed(line)
                if event is not None:
                    yield event

    def wait(
        self,
        job_id: str,
        *,
        on_progress: ProgressCallback | None = None,
        interval: float = 1.0,
        timeout: float | None = None,
        use_events: bool = True,
    ) -> Job:
        """Follow a job until it ends, calling on_progress(job) at each change; the job as it stands at
        the timeout otherwise (check `job.finished`). Events drive it; where the stream breaks off (a
        proxy, an older server), polling every `interval` seconds takes over."""
        deadline = deadline_of(timeout)
        notify = on_progress or (lambda _job: None)
        job = self.get_job(job_id)
        notify(job)
        if use_events and not job.finished:
            job = self._follow(job, notify, remaining(deadline))
        while not job.finished and not past(deadline):
            time.sleep(interval)
            job = self.get_job(job_id)
            notify(job)
        return job

    def _follow(self, job: Job, notify: ProgressCallback, timeout: float | None) -> Job:
        document = job.raw
        try:
            for event in self.events(job.id, timeout=timeout):
                document = apply(document, event)
                job = Job.from_document(document)
                notify(job)
                if event.name in ("end", "gone"):
                    break
        except (ProblemError, httpx.HTTPError, ValueError, KeyError):
            pass  # polling takes over
        return job

    def report(self, job_id: str) -> Report:
        """The comparison of the original and the compressed model (409 until the job succeeded)."""
        return Report.from_document(self._json(calls.report(job_id)))

    def report_html(self, job_id: str) -> str:
        """The report as a self-contained HTML page (tables and charts)."""
        return self._send(calls.report(job_id, html=True)).text

    def log_page(
        self, job_id: str, *, cursor: str | None = None, limit: int = 200, step: int | None = None
    ) -> Page[LogLine]:
        """One page of the job's structured log lines, oldest first."""
        page = self._json(calls.log_page(job_id, step=step, limit=limit, cursor=cursor))
        return Page([LogLine.from_document(item) for item in page["items"]], page["next_cursor"])

    def logs(
        self,
        job_id: str,
        *,
        step: int | None = None,
        follow: bool = False,
        page_size: int = 200,
        interval: float = 1.0,
    ) -> Iterator[LogLine]:
        """Every log line of the job, page after page; with follow, new lines too until the job ends."""
        cursor: str | None = None
        while True:
            page = self.log_page(job_id, cursor=cursor, limit=page_size, step=step)
            yield from page.items
            if page.next_cursor is None or (not follow and len(page.items) < page_size):
                return
            if len(page.items) < page_size:
                time.sleep(interval)  # caught up with a running job: wait for its next lines
            cursor = page.next_cursor

    # Artifacts

    def get_artifact(self, artifact_id: str) -> Artifact:
        """An artifact's metadata: file name, media type, size, SHA-256."""
        return Artifact.from_document(self._json(calls.get_artifact(artifact_id)))

    def download(
        self,
        artifact_id: str,
        destination: Path,
        *,
        overwrite: bool = False,
        on_chunk: ChunkCallback | None = None,
    ) -> Download:
        """Stream an artifact to a file, checked against its SHA-256. An existing file is never
        replaced unless overwrite=True (FileExistsError); a failed download leaves nothing behind."""
        refuse_existing(Path(destination), overwrite=overwrite)
        with self._stream(calls.artifact_content(artifact_id)) as response:
            total = int(response.headers.get("content-length", 0))
            with PartialFile(
                Path(destination), overwrite=overwrite, total=total, on_chunk=on_chunk
            ) as partial:
                for chunk in response.iter_bytes(1024 * 1024):
                    partial.write(chunk)
        return partial.commit(response.headers.get("etag", "").strip('"'))

    # Catalog and settings

    def techniques(self) -> list[Technique]:
        """The catalog: every technique a step can name, with its params' JSON Schema."""
        return [Technique.from_document(item) for item in self._json(calls.techniques())["items"]]

    def webhook_secret(self) -> WebhookSecret:
        """The secret that signs this tenant's webhook deliveries."""
        return WebhookSecret.from_document(self._json(calls.webhook_secret()))
