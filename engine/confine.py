"""What the sandbox child does to itself before the untrusted entry runs: no capabilities, no
ptrace or /proc view from its peers, and (where the kernel has it) a Landlock view of the disk.
"""

from __future__ import annotations

import ctypes
import os
import sys
import sysconfig
from pathlib import Path

from engine import landlock

_PR_SET_DUMPABLE, _PR_CAPBSET_DROP, _PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL = 4, 24, 47, 4
_CAPABILITY_VERSION_3 = 0x20080522

# System locations the interpreter and native libraries read; /etc only for the loader's cache
# and the time zone, never passwords or service configuration. /proc is readable so that helper
# processes the step starts can read their own status; other processes' files there need ptrace
# access, which Landlock refuses outside the sandbox's own domain.
_SYSTEM_READABLE = (
    "/usr/lib", "/usr/lib64", "/usr/local/lib", "/lib", "/lib64", "/usr/share/zoneinfo",
    "/etc/ld.so.cache", "/etc/localtime", "/proc",
    "/sys/devices/system/cpu", "/sys/fs/cgroup", "/dev/null", "/dev/zero", "/dev/urandom", "/dev/random",
)  # fmt: skip
# What the CUDA driver reads besides its device files: the GPUs' PCI records (/proc/driver/nvidia is
# under /proc already).
_GPU_READABLE = ("/sys/bus/pci", "/sys/devices")
# The repository packages a sandboxed entry point may import; the repository root itself is only
# listed (Python's importer needs that), so the data folder beside the code stays unreadable.
CODE_PACKAGES = ("engine", "service")


def forbid_inspection() -> None:
    """Not dumpable: peers running as the same uid can neither ptrace this process nor read its /proc."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)


def drop_capabilities() -> None:
    """Give up every capability (for a child that still runs as root): bounding, ambient and held sets."""
    libc = ctypes.CDLL(None, use_errno=True)
    last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    for capability in range(last + 1):
        libc.prctl(_PR_CAPBSET_DROP, capability, 0, 0, 0)
    libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    header = (ctypes.c_uint32 * 2)(_CAPABILITY_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()  # effective, permitted, inheritable for both 32-bit halves: all zero
    if libc.capset(header, data) != 0:
        raise OSError(ctypes.get_errno(), "capset failed")


def readable_paths(box: Path, entry_module: str) -> list[Path]:
    """Interpreter, installed packages, system libraries, our code packages, and the box."""
    prefixes = {Path(sys.prefix), Path(sys.base_prefix), Path(sys.exec_prefix), Path(sys.base_exec_prefix)}
    prefixes |= {Path(sysconfig.get_paths()[key]) for key in ("stdlib", "platstdlib", "purelib", "platlib")}
    paths = [path.resolve() for path in prefixes] + [Path(sys.executable).resolve()]
    code_root = Path(__file__).resolve().parents[1]
    packages = {*CODE_PACKAGES, entry_module.partition(".")[0]}
    paths += [code_root / name for name in sorted(packages)]
    return [*paths, *(Path(name) for name in _SYSTEM_READABLE), box]


def gpu_devices(root: Path = Path("/dev")) -> list[Path]:
    """The NVIDIA device files (control, one per GPU, unified memory): a step on a GPU worker trains
    and times models on the GPU from inside the sandbox, and CUDA opens and ioctls these."""
    return sorted(root.glob("nvidia*"))


def confine(box: Path, work: Path, entry_module: str, *, use_landlock: bool) -> None:
    """Apply every in-process layer; raises when a requested layer cannot be applied (fail closed)."""
    forbid_inspection()
    if os.geteuid() == 0:
        drop_capabilities()
    if use_landlock:
        # The importer must list the repository root (names only); reading stays limited to the packages.
        code_root = Path(__file__).resolve().parents[1]
        devices = gpu_devices()
        readable = readable_paths(box, entry_module) + [Path(name) for name in _GPU_READABLE if devices]
        landlock.restrict(readable, [work], listable=[code_root], devices=devices)
