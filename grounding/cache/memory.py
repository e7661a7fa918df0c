"""The in-process cache backend: least recently used entries go first, bounded by count and bytes."""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any, Callable

__all__ = ["MemoryBackend", "ENTRY_OVERHEAD_BYTES"]

#: What an entry costs beyond its key and value (the OrderedDict node, the tuple, the float): an
#: estimate, measured with tracemalloc by ``python -m benchmarks.cache``.
ENTRY_OVERHEAD_BYTES = 200


class MemoryBackend:
    """Entries in this process: at most ``max_entries`` and ``max_bytes`` (keys and values), LRU.

    Thread-safe and loop-free (its coroutines never wait), so any event loop or
    thread may share one. ``clock`` (``time.monotonic``) is injectable for tests.
    """

    name = "memory"

    def __init__(self, *, max_entries: int = 10_000, max_bytes: int = 256 * 1024 * 1024,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if max_entries < 1 or max_bytes < 1:
            raise ValueError("max_entries and max_bytes must be positive")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._clock = clock
        self._lock = threading.Lock()
        self._data: OrderedDict[str, tuple[bytes, float]] = OrderedDict()  # key -> (value, expires at)
        self._bytes = 0
        self.evictions = 0

    @staticmethod
    def _size(key: str, value: bytes) -> int:
        return len(key) + len(value) + ENTRY_OVERHEAD_BYTES

    def get_now(self, key: str) -> bytes | None:
        with self._lock:
            item = self._data.get(key)
            if item is None:
                return None
            if item[1] <= self._clock():
                self._drop(key)
                return None
            self._data.move_to_end(key)
            return item[0]

    def set_now(self, key: str, value: bytes, ttl_s: float) -> None:
        size = self._size(key, value)
        if ttl_s <= 0 or size > self.max_bytes:
            return
        with self._lock:
            if key in self._data:
                self._drop(key)
            self._data[key] = (value, self._clock() + ttl_s)
            self._bytes += size
            while len(self._data) > self.max_entries or self._bytes > self.max_bytes:
                oldest = next(iter(self._data))
                self._drop(oldest)
                self.evictions += 1

    def _drop(self, key: str) -> None:
        value, _ = self._data.pop(key)
        self._bytes -= self._size(key, value)

    async def get(self, key: str) -> bytes | None:
        return self.get_now(key)

    async def set(self, key: str, value: bytes, ttl_s: float) -> None:
        self.set_now(key, value, ttl_s)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._bytes = 0

    def __len__(self) -> int:
        return len(self._data)

    @property
    def bytes(self) -> int:
        """Bytes accounted for (keys, values and :data:`ENTRY_OVERHEAD_BYTES` each)."""
        return self._bytes

    def status(self) -> dict[str, Any]:
        return {"backend": self.name, "entries": len(self._data), "bytes": self._bytes,
                "max_entries": self.max_entries, "max_bytes": self.max_bytes, "evictions": self.evictions}

    def close(self) -> None:
        self.clear()
