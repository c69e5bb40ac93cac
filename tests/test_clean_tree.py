"""The clean-tree check sees every way a run can touch a results file, and nothing else."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.fixtures.clean_tree import changes, snapshot


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)


def test_added_changed_and_removed_results_files_are_reported(tmp_path: Path) -> None:
    _git(tmp_path, "init", "-q")
    (tmp_path / ".gitignore").write_text("docs/.lock\n")
    (tmp_path / "docs").mkdir()
    for name in ("RELIABILITY.md", "reliability.json", "report-screenshot.png", "helper.py"):
        (tmp_path / "docs" / name).write_text(name)
    _git(tmp_path, "add", ".")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "results")
    before = snapshot(tmp_path, ("docs",))

    (tmp_path / "docs" / "RELIABILITY.md").write_text("rewritten by a test")
    (tmp_path / "docs" / "report-screenshot.png").unlink()
    (tmp_path / "docs" / "new.json").write_text("{}")
    (tmp_path / "docs" / ".lock").write_text("ignored by git")
    (tmp_path / "docs" / "helper.py").write_text("code is not a results file")
    (tmp_path / "elsewhere.md").write_text("outside the results folders")

    assert changes(before, snapshot(tmp_path, ("docs",))) == [
        "docs/RELIABILITY.md (changed)",
        "docs/new.json (added)",
        "docs/report-screenshot.png (removed)",
    ]


def test_an_untouched_tree_and_a_folder_outside_git_report_nothing(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "RELIABILITY.md").write_text("not in a git checkout")

    assert snapshot(tmp_path, ("docs",)) == {}
    assert changes({"docs/a.md": "1"}, {"docs/a.md": "1"}) == []


def test_a_new_file_in_the_repository_root_is_reported(tmp_path: Path) -> None:
    from tests.fixtures.clean_tree import root_files

    _git(tmp_path, "init", "-q")
    (tmp_path / ".gitignore").write_text("/ignored.onnx\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "deep.txt").write_text("inside a folder")
    before = root_files(tmp_path)

    (tmp_path / "sym_shape_infer_temp.onnx").write_text("a library's debug dump")
    (tmp_path / "ignored.onnx").write_text("ignored")

    assert changes(before, root_files(tmp_path)) == ["sym_shape_infer_temp.onnx (added)"]
