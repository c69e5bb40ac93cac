"""ModelPress Python SDK: upload models and datasets, compress, follow, download and report.

Depends on httpx alone. `Client` is synchronous, `AsyncClient` the same for asyncio; every error
the server answers is a `ProblemError` carrying the RFC 9457 fields.
"""

from modelpress.async_client import AsyncClient
from modelpress.client import Client
from modelpress.errors import ConnectionProblem, DownloadProblem, ProblemError
from modelpress.events import Event
from modelpress.results import (
    Artifact,
    Dataset,
    Download,
    Job,
    LogLine,
    Model,
    Page,
    Report,
    Step,
    Technique,
    WebhookSecret,
)

__all__ = [
    "Artifact",
    "AsyncClient",
    "Client",
    "ConnectionProblem",
    "Dataset",
    "Download",
    "DownloadProblem",
    "Event",
    "Job",
    "LogLine",
    "Model",
    "Page",
    "ProblemError",
    "Report",
    "Step",
    "Technique",
    "WebhookSecret",
]
