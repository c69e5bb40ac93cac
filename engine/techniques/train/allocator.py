"""glibc's mmap threshold around the batch-size probe, so that a failed probe gives its memory back."""

from __future__ import annotations

import ctypes
import resource
from collections.abc import Iterator
from contextlib import contextmanager

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
# glibc's starting threshold, and the most its dynamic threshold rises to on 64-bit systems.
INITIAL_THRESHOLD = 128 * 1024
STEADY_THRESHOLD = 32 * 1024 * 1024


@contextmanager
def freed_memory_unmapped() -> Iterator[None]:
    """Map every large block on its own while inside, so freeing it returns its address space.

    glibc raises its mmap threshold as large blocks are freed and then serves them from its heaps,
    which keep freed memory mapped: under the sandbox's address-space limit, one probe step that
    ran out of memory would make every smaller probe fail too. Afterwards the threshold is fixed
    where the dynamic one settles, so training allocates as it would have. No-op without a limit.
    """
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc
        mallopt = None
    if soft == resource.RLIM_INFINITY or mallopt is None:
        yield
        return
    mallopt(M_MMAP_THRESHOLD, INITIAL_THRESHOLD)
    try:
        yield
    finally:
        mallopt(M_MMAP_THRESHOLD, STEADY_THRESHOLD)
        # Fixing the threshold stops glibc moving the trim threshold too; put it where it would be.
        mallopt(M_TRIM_THRESHOLD, 2 * STEADY_THRESHOLD)
