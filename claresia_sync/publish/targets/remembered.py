"""What a long-lived process (the daemon) remembers of the targets between runs: bounded maps,
so that a process serving many organisations keeps a fixed amount (an evicted entry costs one
read again). Each target module says what it keeps and why that cannot weaken a check."""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

from cachetools import LRUCache

K = TypeVar("K")
V = TypeVar("V")


class Lru(Generic[K, V]):
    """cachetools' LRU map behind a lock (the daemon's threads use it too), whose `get` tells a
    stored None from an absent key."""

    def __init__(self, size: int) -> None:
        self._data: LRUCache[K, V] = LRUCache(maxsize=size)
        self._lock = threading.Lock()

    def get(self, key: K) -> tuple[bool, V | None]:
        """(found, value): a stored None is found."""
        with self._lock:
            if key not in self._data:
                return False, None
            return True, self._data[key]  # a read: it becomes the most recently used

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._data[key] = value

    def items(self) -> list[tuple[K, V]]:
        with self._lock:
            return list(self._data.items())

    def __len__(self) -> int:
        return len(self._data)
