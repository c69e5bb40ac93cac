"""Moving artifacts between the store and a step's working directory."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path

from engine.contract import TechniqueError
from service.artifacts import service as artifacts_service
from service.datasets import service as datasets_service
from service.datasets.inspect import read_npz_headers
from service.errors import InvalidDataset
from service.models import service as models_service
from service.settings import get_settings
from service.storage import get_store
from worker import records
from worker.cache import ObjectCache

# Set by tests; otherwise MODELPRESS_SCRATCH_DIR (this worker's private folder, never the API's disk).
SCRATCH: Path | None = None


def scratch_root() -> Path:
    """This worker's private scratch folder: per-process job folders and the object cache."""
    return SCRATCH or get_settings().resolved_scratch_dir


def object_cache() -> ObjectCache:
    """The worker's cache of store objects, shared by its pool processes."""
    return ObjectCache(scratch_root() / "cache", get_settings().worker_cache_bytes)


def job_workdir(job_id: uuid.UUID) -> Path:
    """A fresh private directory for one attempt of a job, under this process's scratch folder."""
    owner = scratch_root() / str(os.getpid())
    owner.mkdir(mode=0o700, parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"job-{job_id}-", dir=owner))


def claim_scratch() -> None:
    """A new pool process empties the folder of its pid: what is there belonged to a dead process."""
    shutil.rmtree(scratch_root() / str(os.getpid()), ignore_errors=True)


def remove_orphan_scratch() -> int:
    """Delete the scratch folders of processes that no longer run (a killed worker's job folders)."""
    removed = 0
    for owner in scratch_root().glob("*"):
        if owner.name.isdigit() and not _running(int(owner.name)):
            shutil.rmtree(owner, ignore_errors=True)
            removed += 1
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def fetch_artifact(artifact_id: uuid.UUID, destination: Path) -> Path:
    """Copy a stored artifact to a local file, through the worker's cache."""
    sha256, size = records.call(artifacts_service.content_address, artifact_id=artifact_id)
    return object_cache().fetch(get_store(), sha256, destination, size)


def fetch_datasets(dataset_ids: list[str], folder: Path) -> dict[str, str]:
    """Copy the named datasets to local .npz files; {dataset id: path}."""
    folder.mkdir(parents=True, exist_ok=True)
    paths: dict[str, str] = {}
    for dataset_id in dict.fromkeys(dataset_ids):
        dataset = records.call(datasets_service.stored_dataset, dataset_id=uuid.UUID(dataset_id))
        path = fetch_artifact(dataset.artifact_id, folder / f"{dataset_id}.npz")
        _check_values(dataset_id, path)
        paths[dataset_id] = str(path)
    return paths


def fetch_models(model_ids: list[str], folder: Path) -> dict[str, str]:
    """Copy the named uploaded models (their graphs as normalized at ingest) to local files; {id: path}."""
    folder.mkdir(parents=True, exist_ok=True)
    paths: dict[str, str] = {}
    for model_id in dict.fromkeys(model_ids):
        model = records.call(models_service.stored_model, model_id=uuid.UUID(model_id))
        artifact = model.normalized_artifact_id or model.onnx_artifact_id
        assert artifact is not None
        paths[model_id] = str(fetch_artifact(artifact, folder / f"{model_id}.onnx"))
    return paths


def _check_values(dataset_id: str, path: Path) -> None:
    """The API scanned the values at upload; check again, as the store is read here, not trusted."""
    try:
        read_npz_headers(path, scan=True)
    except InvalidDataset as refused:
        raise TechniqueError(InvalidDataset, f"dataset {dataset_id}: {refused.detail}") from None


def collect_model(produced: Path, destination: Path) -> Path:
    """Move a model a sandboxed step wrote (and its `.data` external-data file) into the job's folder."""
    shutil.move(produced, destination)
    data = produced.with_name(produced.name + ".data")
    if data.is_file():
        shutil.move(data, destination.with_name(destination.name + ".data"))
    return destination


def remove_workdir(path: Path) -> None:
    """Delete a working directory and everything the child left in it."""
    shutil.rmtree(path, ignore_errors=True)
