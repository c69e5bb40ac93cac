"""Moving artifacts between the store and a step's working directory."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path

from service.artifacts.orm import Artifact
from service.datasets.orm import Dataset
from service.db import new_session
from service.storage import get_store


def job_workdir(job_id: uuid.UUID) -> Path:
    """A fresh private directory for one attempt of a job."""
    return Path(tempfile.mkdtemp(prefix=f"job-{job_id}-"))


def fetch_artifact(artifact_id: uuid.UUID, destination: Path) -> Path:
    """Copy a stored artifact to a local file."""
    with new_session() as session:
        artifact = session.get(Artifact, artifact_id)
        if artifact is None:
            raise LookupError(f"artifact {artifact_id} is missing")
        sha256 = artifact.sha256
    return get_store().fetch_to(sha256, destination)


def fetch_datasets(dataset_ids: list[str], folder: Path) -> dict[str, str]:
    """Copy the named datasets to local .npz files; {dataset id: path}."""
    folder.mkdir(parents=True, exist_ok=True)
    paths: dict[str, str] = {}
    for dataset_id in dict.fromkeys(dataset_ids):
        with new_session() as session:
            dataset = session.get(Dataset, uuid.UUID(dataset_id))
            if dataset is None:
                raise LookupError(f"dataset {dataset_id} is missing")
            artifact_id = dataset.artifact_id
        paths[dataset_id] = str(fetch_artifact(artifact_id, folder / f"{dataset_id}.npz"))
    return paths


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
