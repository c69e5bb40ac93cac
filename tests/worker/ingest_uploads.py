"""Running ingest on an upload in a test, and catching its refusal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.contract import TechniqueError
from engine.ingest import ingest_model


def ingest(upload: Path, tmp_path: Path, **kwargs: Any) -> tuple[dict[str, Any], Path]:
    output = tmp_path / "canonical.onnx"
    return ingest_model(str(upload), str(output), str(tmp_path / "work"), **kwargs), output


def rejected(upload: Path, tmp_path: Path) -> TechniqueError:
    with pytest.raises(TechniqueError) as caught:
        ingest(upload, tmp_path)
    return caught.value


def only_file(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path
