"""The transpiler: Skill IR + tenant -> Claude skill JSON and its SKILL.md bundle."""

from claresia_sync.transpile.transpiler import ClaudeSkill, SkillFile, content_hash, transpile

__all__ = ["ClaudeSkill", "SkillFile", "content_hash", "transpile"]
