"""The API process never imports the ML stack or the worker package (DESIGN §1, §6)."""

from __future__ import annotations

import subprocess
import sys


def test_api_imports_no_ml_libraries_and_no_worker_code() -> None:
    probe = (
        "import sys, service.main, service.cli.main\n"
        "service.main.create_app()\n"
        "heavy = {'torch', 'onnx', 'onnxruntime', 'tensorrt', 'worker'}\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in heavy)\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)

    assert result.stdout.strip() == ""
