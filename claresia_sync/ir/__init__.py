"""Skill IR: the models of docs/interfaces.md section 1 and the loader that reports every
problem."""

from claresia_sync.ir.loader import (
    CatalogLoad,
    IRError,
    LoadedSkill,
    Problem,
    canonical_hash,
    load_catalog,
    load_skill_file,
    parse_ir,
)
from claresia_sync.ir.models import SkillInput, SkillIR

__all__ = [
    "CatalogLoad",
    "IRError",
    "LoadedSkill",
    "Problem",
    "SkillIR",
    "SkillInput",
    "canonical_hash",
    "load_catalog",
    "load_skill_file",
    "parse_ir",
]
