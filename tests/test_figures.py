"""Reliability figures are written only by `make chaos-report`, never by a plain test run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests import figures


@pytest.fixture
def pages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    monkeypatch.setattr(figures, "DATA", tmp_path / "reliability.json")
    monkeypatch.setattr(figures, "PAGE", tmp_path / "RELIABILITY.md")
    return figures.DATA, figures.PAGE


def test_a_plain_run_leaves_the_figures_alone(
    pages: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(figures.RECORD_ENV, raising=False)
    figures.record("embedded_recovery", {"kill to job succeeded, s": 12.5})
    assert not any(path.exists() for path in pages)


def test_the_report_run_writes_both(pages: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(figures.RECORD_ENV, "1")
    figures.record("embedded_recovery", {"kill to job succeeded, s": 12.5})
    data, page = pages
    assert json.loads(data.read_text())["embedded_recovery"]["kill to job succeeded, s"] == 12.5
    text = page.read_text()
    assert "Written by `make chaos-report`" in text
    assert "## Embedded mode: worker SIGKILL, supervised restart" in text
