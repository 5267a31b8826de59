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
proven stays refused (never a new adoption). Each cache is a `remembered.Lru`.
"""

from __future__ import annotations

from claresia_sync.publish.targets.remembered import Lru

# Per cache: 10,000 skills stay warm (one first version, at most two archives each) in about
# 10 MB at most (ids and hashes).
ENTRIES = 20_000


ArchiveKey = tuple[str, str, str, str, str]
"""(base URL, workspace id, skill id, version id, skill name)."""
SkillKey = tuple[str, str, str]
"""(base URL, workspace id, skill id)."""

ARCHIVES: Lru[ArchiveKey, str | None] = Lru(ENTRIES)
"""The archive's content hash (None: not a zip, or more than a version may hold)."""
FIRST: Lru[SkillKey, tuple[str, str]] = Lru(ENTRIES)
"""(latest version id when the versions were listed, first version id)."""
