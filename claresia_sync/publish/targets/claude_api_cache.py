"""What the Skills API never changes, remembered by the process, so that a drift check of
unchanged `claude-api` skills reads only the skills list.

- `ARCHIVES`: the content hash of a version's archive, by (base URL, workspace, skill id,
  version id, the skill name its files are hashed under). A version is immutable (the API can
  create and delete one, never change it), and a version id names one version of one skill for
  good: a skill deleted and made again gets a new skill id, so no hash of it can apply to
  another.
- `FIRST`: the first version of a skill id, with the latest version id it was read under. The
  versions list is read again whenever the listed skill's latest version differs (a version
  uploaded or deleted behind our back), so a new version is always seen.

Why this cannot weaken a proof: the entries hold ids and hashes the server gave (never our own
upload's hash), and are looked up only for a skill id the server has just listed (or returned)
to the target's key, under that target's base URL and workspace; no key is part of them. A
version deleted by hand while the latest stays the same goes unseen until the latest changes:
the first version read stays the skill's proof, so a skill proven ours stays ours and one not
proven stays refused (never a new adoption). Each cache is an LRU with a size cap (an evicted
entry costs one read again); a lock makes it safe from the daemon's threads too.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

# Per cache: 10,000 skills stay warm (one first version, at most two archives each) in about
# 10 MB at most (ids and hashes).
ENTRIES = 20_000


class Lru(Generic[K, V]):
    """A bounded map: least recently used entries go first."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._data: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> tuple[bool, V | None]:
        """(found, value): a stored None is found."""
        with self._lock:
            if key not in self._data:
                return False, None
            self._data.move_to_end(key)
            return True, self._data[key]

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)

    def items(self) -> list[tuple[K, V]]:
        with self._lock:
            return list(self._data.items())

    def __len__(self) -> int:
        return len(self._data)


ArchiveKey = tuple[str, str, str, str, str]
"""(base URL, workspace id, skill id, version id, skill name)."""
SkillKey = tuple[str, str, str]
"""(base URL, workspace id, skill id)."""

ARCHIVES: Lru[ArchiveKey, str | None] = Lru(ENTRIES)
"""The archive's content hash (None: not a zip, or more than a version may hold)."""
FIRST: Lru[SkillKey, tuple[str, str]] = Lru(ENTRIES)
"""(latest version id when the versions were listed, first version id)."""
