"""The claude-api proof cache is bounded: the least recently used entry goes first, and a
stored None (an archive that is no zip) is remembered as such."""

from __future__ import annotations

from claresia_sync.publish.targets.remembered import Lru


def test_the_least_recently_used_entry_goes_first() -> None:
    lru: Lru[str, str | None] = Lru(2)
    lru.put("a", "1")
    lru.put("b", None)
    assert lru.get("a") == (True, "1")  # "b" is now the least recently used
    lru.put("c", "3")
    assert len(lru) == 2
    assert lru.get("b") == (False, None)
    assert lru.get("a") == (True, "1") and lru.get("c") == (True, "3")


def test_a_stored_none_is_found() -> None:
    lru: Lru[str, str | None] = Lru(1)
    lru.put("not-a-zip", None)
    assert lru.get("not-a-zip") == (True, None)
    assert lru.get("never-read") == (False, None)
