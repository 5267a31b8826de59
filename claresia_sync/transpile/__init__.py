"""The transpiler: Skill IR + tenant -> Claude skill JSON and its SKILL.md bundle."""

from claresia_sync.transpile.transpiler import (
    ClaudeSkill,
    SkillFile,
    bytes_hash,
    content_hash,
    transpile,
)

__all__ = ["ClaudeSkill", "SkillFile", "bytes_hash", "content_hash", "transpile"]
