"""Every log record is written once, also after the migrations ran in the same process (`serve`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.fixtures.infrastructure import ROOT

SCRIPT = """
from service import migrate
from service.observability.logging import configure_logging, get_logger
from service.settings import get_settings
migrate.upgrade()
configure_logging(get_settings())
get_logger("modelpress.api").info("request", path="/healthz")
"""


def test_a_record_after_migrating_is_logged_once(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELPRESS_")}
    env.update(MODELPRESS_HOME=str(tmp_path), PYTHONPATH=str(ROOT))
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )

    assert run.returncode == 0, run.stderr[-3000:]
    assert len([line for line in run.stderr.splitlines() if "/healthz" in line]) == 1, run.stderr
