"""GPU device files in the sandbox: a child confined by Landlock may open and ioctl the device files
it is given (CUDA needs /dev/nvidia*), and no others."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine import landlock
from engine.confine import gpu_devices

ROOT = Path(__file__).resolve().parents[2]
# After restricting itself the child only opens /dev/zero for writing and asks it a terminal ioctl
# (TCGETS): Landlock answers EACCES where the right is missing, the device itself ENOTTY.
CHILD = """
import errno, fcntl, json, os, sys, termios
from pathlib import Path
from engine import landlock
landlock.restrict([], [], devices=[Path(p) for p in sys.argv[1:]])
outcome = {}
try:
    fd = os.open("/dev/zero", os.O_RDWR)
    outcome["open"] = "ok"
    try:
        fcntl.ioctl(fd, termios.TCGETS, bytes(64))
        outcome["ioctl"] = "ok"
    except OSError as error:
        outcome["ioctl"] = errno.errorcode[error.errno]
except OSError as error:
    outcome["open"] = errno.errorcode[error.errno]
print(json.dumps(outcome))
"""


def _confined(devices: list[str]) -> dict[str, str]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, *devices],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result: dict[str, str] = json.loads(done.stdout)
    return result


def test_a_device_file_granted_to_the_sandbox_opens_read_write_and_takes_ioctls() -> None:
    assert landlock.abi_version() >= 5, "this test needs Landlock's device ioctl right (Linux 6.10)"
    assert _confined(["/dev/zero"]) == {"open": "ok", "ioctl": "ENOTTY"}


def test_a_device_file_not_granted_stays_closed() -> None:
    assert _confined([]) == {"open": "EACCES"}


def test_the_gpu_device_files_are_the_nvidia_ones(tmp_path: Path) -> None:
    for name in ("nvidia0", "nvidiactl", "nvidia-uvm", "null", "dri"):
        (tmp_path / name).touch()
    assert [path.name for path in gpu_devices(tmp_path)] == ["nvidia-uvm", "nvidia0", "nvidiactl"]


@pytest.mark.parametrize("present", [True, False])
def test_the_sandbox_child_grants_the_gpu_files_only_where_they_exist(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, present: bool
) -> None:
    from engine import confine

    granted: dict[str, list[Path]] = {}

    def record(readable: list[Path], writable: list[Path], listable: list[Path], devices: list[Path]) -> None:
        granted.update(readable=list(readable), devices=list(devices))

    devices = [tmp_path / "nvidia0"] if present else []
    monkeypatch.setattr(confine, "gpu_devices", lambda: devices)
    monkeypatch.setattr(confine.landlock, "restrict", record)
    monkeypatch.setattr(confine, "forbid_inspection", lambda: None)
    monkeypatch.setattr(confine, "drop_capabilities", lambda: None)

    confine.confine(tmp_path, tmp_path, "engine.child", use_landlock=True)

    assert granted["devices"] == devices
    assert (Path("/sys/devices") in granted["readable"]) is present


@pytest.mark.parametrize("gpu", [False, True], ids=["cpu", "gpu"])
def test_memory_is_capped_as_address_space_except_where_cuda_needs_it(gpu: bool) -> None:
    """CUDA reserves address space for unified memory beyond any step's cap: on a GPU worker the cap
    is on the data segment instead (a real child process reports its own limits)."""
    import resource
    from functools import partial

    from worker.sandbox.isolation import apply_limits

    cap = 6 << 30
    probe = "import resource as r; print(r.getrlimit(r.RLIMIT_AS)[0], r.getrlimit(r.RLIMIT_DATA)[0])"
    shown = subprocess.run(
        [sys.executable, "-c", probe], preexec_fn=partial(apply_limits, cap, 60, gpu=gpu),
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    address_space, data = (int(value) for value in shown)
    inherited = resource.getrlimit(resource.RLIMIT_DATA if not gpu else resource.RLIMIT_AS)[0]
    assert (data, address_space) == ((cap, inherited) if gpu else (inherited, cap))
