"""API keys already checked, trusted for a few seconds so that a request costs no key query.

A revocation made in this process (`forget`) takes effect at once; one made elsewhere (the CLI,
another API process) takes effect within `auth_cache_s`, the documented revocation window.
Unknown keys are never cached, so guessing keys still costs one query per guess.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable


class KeyCache:
    """A bounded, thread-safe map of key hash to (tenant id, time it stops being trusted)."""

    def __init__(
        self, ttl_s: float, max_entries: int = 4096, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[uuid.UUID, float]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key_hash: str) -> uuid.UUID | None:
        """The tenant of a key checked less than ttl_s ago, else None."""
        with self._lock:
            entry = self._entries.get(key_hash)
            if entry is None:
                return None
            if entry[1] <= self._clock():
                del self._entries[key_hash]
                return None
            return entry[0]

    def put(self, key_hash: str, tenant_id: uuid.UUID) -> None:
        """Trust a key that the database just confirmed; the oldest entry leaves when full."""
        if self.ttl_s <= 0:
            return
        with self._lock:
            self._entries[key_hash] = (tenant_id, self._clock() + self.ttl_s)
            self._entries.move_to_end(key_hash)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def forget(self, key_hashes: list[str] | None = None) -> None:
        """Stop trusting these keys (all keys when None) at once."""
        with self._lock:
            if key_hashes is None:
                self._entries.clear()
            for key_hash in key_hashes or ():
                self._entries.pop(key_hash, None)
