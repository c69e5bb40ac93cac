"""What this worker's libraries can run, probed once at start-up and registered with its row."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from typing import Any

log = logging.getLogger("modelpress.workers")

PROBE_TIMEOUT_S = 120
# Run in a child: the worker's own process keeps onnxruntime and torch out of its memory.
PROBE = """
import importlib.util, json
algorithms = []
try:
    import onnxruntime.quantization.matmul_nbits_quantizer as nbits
except Exception:
    nbits = None
if nbits is not None:
    if hasattr(nbits, "DefaultWeightOnlyQuantConfig"):
        # gptq is the project's own (engine/techniques/quantize/gptq.py): it needs only MatMulNBits.
        algorithms += ["rtn", "gptq"]
    if hasattr(nbits, "HQQWeightOnlyQuantConfig") and importlib.util.find_spec("torch") is not None:
        algorithms.append("hqq")
print(json.dumps({"weight_only_algorithms": algorithms}))
"""


def probe() -> dict[str, Any]:
    """The capabilities document; empty lists when the probe fails (jobs needing them are refused)."""
    try:
        result = subprocess.run(
            [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=PROBE_TIMEOUT_S, check=True
        )
        found: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    except (subprocess.SubprocessError, OSError, ValueError, IndexError) as exc:
        log.warning("capability probe failed (%s); registering none", type(exc).__name__)
        return {"weight_only_algorithms": []}
    return found
