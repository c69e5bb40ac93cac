"""What a worker reports about its hardware, checked against this machine read independently."""

from __future__ import annotations

import os
from pathlib import Path

import onnxruntime
import torch

from worker import hardware

CPUINFO = """processor\t: 0
model name\t: Example Xeon
flags\t\t: fpu sse2 avx2 avx512f avx512_vnni amx_int8 amx_tile
processor\t: 1
model name\t: Example Xeon
flags\t\t: fpu sse2 avx2 avx512f avx512_vnni amx_int8 amx_tile
"""


def test_cpu_flags_that_matter_for_int8_are_picked_out(tmp_path: Path) -> None:
    (tmp_path / "cpuinfo").write_text(CPUINFO)
    assert hardware.cpu_info(tmp_path / "cpuinfo") == {
        "cpu_model": "Example Xeon",
        "cpu_flags": ["amx_int8", "avx2", "avx512_vnni", "avx512f"],
    }


def test_a_cpu_without_vector_extensions_reports_none(tmp_path: Path) -> None:
    (tmp_path / "cpuinfo").write_text("model name\t: Old\nflags\t\t: fpu sse2\n")
    assert hardware.cpu_info(tmp_path / "cpuinfo")["cpu_flags"] == []
    assert hardware.cpu_info(tmp_path / "missing") == {"cpu_model": None, "cpu_flags": []}


def test_the_probe_matches_this_machine() -> None:
    found = hardware.probe()
    flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    assert ("avx2" in found["cpu_flags"]) == (" avx2" in flags)
    assert ("avx512_vnni" in found["cpu_flags"]) == (" avx512_vnni" in flags)
    assert found["cores"] == os.cpu_count()
    meminfo = Path("/proc/meminfo").read_text().split()
    assert found["memory_bytes"] == int(meminfo[meminfo.index("MemTotal:") + 1]) * 1024
    assert found["torch_version"] == torch.__version__
    assert found["onnxruntime_version"] == onnxruntime.__version__
    assert found["execution_providers"] == onnxruntime.get_available_providers()
    # What a CPU box must say: no GPU, not "unknown" dressed up as one.
    assert (found["gpu_name"] is None) == (not torch.cuda.is_available())
    assert found["gpu_count"] == (torch.cuda.device_count() if torch.cuda.is_available() else 0)
