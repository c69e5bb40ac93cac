"""Generated upload bodies and a memory sampler for the streaming tests."""

from __future__ import annotations

import struct
import threading
import zlib
from collections.abc import Iterator

from tests.chaos.live import rss_bytes

MIB = 1024 * 1024


def streamed_npz(samples: int) -> Iterator[bytes]:
    """A valid .npz holding zeros of shape (samples, 1, 8, 8), generated chunk by chunk."""
    header = f"{{'descr': '<f4', 'fortran_order': False, 'shape': ({samples}, 1, 8, 8), }}"
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    npy_head = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode()
    size = len(npy_head) + samples * 256
    name = b"x.npy"
    # Sizes and CRC follow the data in a data descriptor (flag bit 3): nothing is computed upfront.
    yield struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0x08, 0, 0, 0, 0, 0, 0, len(name), 0) + name
    crc = zlib.crc32(npy_head)
    yield npy_head
    zero, left = bytes(MIB), samples * 256
    while left:
        chunk = zero if left >= MIB else zero[:left]
        crc = zlib.crc32(chunk, crc)
        left -= len(chunk)
        yield chunk
    yield struct.pack("<4s3L", b"PK\x07\x08", crc, size, size)
    local_size = 30 + len(name) + size + 16
    central = (
        struct.pack(
            "<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0x08, 0, 0, 0, crc, size, size, len(name), 0, 0, 0, 0, 0, 0
        )
        + name
    )
    yield central
    yield struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, len(central), local_size, 0)


class RssSampler:
    """Samples a process's resident memory every few milliseconds in a thread."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self.samples = pid, rss_bytes(pid), 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_bytes(self.pid))
            self.samples += 1
