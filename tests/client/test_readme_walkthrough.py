"""The README's walkthrough blocks, run verbatim against a live service twice in a row, as a user would.

A block runs when the line above its fence is `<!-- walkthrough: ... -->`; prose examples do not.
Each marked block runs in its own `bash`, in a folder holding what `make example` writes, with
`MP` and `KEY` exported as the README tells the reader to, and the virtual environment on PATH.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.client.conftest import LiveServer
from tests.fixtures.api import new_key
from tests.fixtures.infrastructure import ROOT

MARKED_BLOCK = re.compile(
    r"^<!-- walkthrough:[^\n]*-->\n```(?:bash|sh)\n(.*?)^```$", re.MULTILINE | re.DOTALL
)
RUNS = 2  # the second run catches what only works once (a reused Idempotency-Key, a file in the way)
BLOCK_TIMEOUT_S = 600


def walkthrough_blocks(readme: str) -> list[str]:
    """The shell blocks the README marks as its walkthrough, in order."""
    return MARKED_BLOCK.findall(readme)


@pytest.fixture(scope="module")
def example_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with model.onnx and eval.npz, written by what `make example` runs."""
    folder = tmp_path_factory.mktemp("walkthrough")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-m", "examples.digits"], cwd=folder, env=env, check=True, timeout=600)
    return folder


def test_the_readme_marks_its_walkthrough() -> None:
    blocks = walkthrough_blocks((ROOT / "README.md").read_text())

    assert len(blocks) >= 2, "the curl and the CLI walkthroughs are marked to run"
    assert all(block.startswith("set -euo pipefail\n") for block in blocks)
    # A shell function named `id` shadows the system command for the rest of the reader's session.
    assert not [block for block in blocks if re.search(r"^\s*(function\s+)?id\s*\(\)", block, re.M)]


@pytest.mark.timeout(1800)  # two runs of two jobs each, plus training the example, on a busy machine
def test_the_walkthrough_runs_twice_in_a_row(live_server: LiveServer, example_folder: Path) -> None:
    blocks = walkthrough_blocks((ROOT / "README.md").read_text())
    venv_bin = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELPRESS_")}
    env.update(MP=live_server.url, KEY=new_key(), PATH=f"{venv_bin}{os.pathsep}{env['PATH']}")

    for run in range(1, RUNS + 1):
        for number, block in enumerate(blocks, start=1):
            result = subprocess.run(
                ["bash", "-c", block],
                cwd=example_folder,
                env=env,
                capture_output=True,
                text=True,
                timeout=BLOCK_TIMEOUT_S,
            )
            assert result.returncode == 0, (
                f"run {run}, block {number} exited {result.returncode}\n"
                f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}"
            )
    # What the walkthroughs download is there, and the second run did not overwrite the first's.
    assert (example_folder / "model.compressed.onnx").stat().st_size > 0
    assert len(list(example_folder.glob("*-*-*-*-*.onnx"))) == RUNS
