"""Custom skills of one Claude API workspace (the Skills API, `/v1/skills`), as the official SDK's
`skills` resources and types describe them: a skill holds at least one version; its `name`
comes from the first upload's SKILL.md frontmatter and every later version must keep it.
Plain data; callers hold the emulator's lock.

Deleting a skill that has versions is not settled by the docs, so it is switchable
(`SkillDelete`, per organisation in the seed or by `POST /_emulator/orgs/{id}`): `direct` (the
SDK's types: a skill always holds a version, so deleting the skill takes its versions, and its
only version cannot be deleted alone) or `versions_first` (as beta users report: 400 "Cannot
delete skill with existing versions. Delete all versions first.", and every version, the last
too, can be deleted)."""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from claresia_sync.emulator.common import bad_request, cursor_page, iso_now, not_found
from claresia_sync.emulator.skill_rules import (
    one_folder_problems,
    skill_md_fields,
    skill_md_problems,
)
from claresia_sync.emulator.uploads import Upload, check_paths, text, zip_bytes

_MAX_DISPLAY_NAME = 255


@dataclass
class SkillVersion:
    id: str
    skill_id: str
    name: str
    description: str
    created_at: str
    files: tuple[tuple[str, bytes], ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "skill_version",
            "id": self.id,
            "skill_id": self.skill_id,
            "name": self.name,
            "description": self.description,
            "created_at": self.created_at,
        }


SkillDelete = Literal["direct", "versions_first"]


@dataclass
class WorkspaceSkill:
    id: str
    name: str
    display_name: str
    created_at: str
    updated_at: str
    versions: list[SkillVersion]  # oldest first

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "skill",
            "id": self.id,
            "display_name": self.display_name,
            "latest_version_id": self.versions[-1].id if self.versions else None,
            "source": {"type": "custom"},
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }

    def version(self, version_id: str) -> SkillVersion:
        if version_id == "latest" and self.versions:
            return self.versions[-1]
        for v in self.versions:
            if v.id == version_id:
                return v
        raise not_found(f"skill version {version_id!r} not found in skill {self.id}")


def parse_skill(upload: Upload) -> tuple[str, str]:
    """(name, description) of a skill upload: one top folder holding SKILL.md; 400 otherwise."""
    problems = check_paths(upload.files)
    top, found = one_folder_problems(p for p, _ in upload.files)
    problems += found
    if problems or top is None:
        raise bad_request("invalid skill upload: " + "; ".join(problems))
    skill_md = f"{top}/SKILL.md"
    content = text(skill_md, dict(upload.files)[skill_md])
    found = skill_md_problems(content, top)
    if found:
        raise bad_request("invalid skill upload: " + "; ".join(found))
    return skill_md_fields(content)


class WorkspaceSkills:
    """The custom skills of one workspace. `new_id(prefix)` makes increasing ids."""

    def __init__(self, new_id: Callable[[str], str], delete: SkillDelete = "direct") -> None:
        self.new_id = new_id
        self.delete_mode: SkillDelete = delete
        self.skills: dict[str, WorkspaceSkill] = {}
        self.ids: list[str] = []

    def get(self, skill_id: str) -> WorkspaceSkill:
        found = self.skills.get(skill_id)
        if found is None:
            raise not_found(f"skill {skill_id!r} not found in this workspace")
        return found

    def list_skills(self, limit: int, page: str | None, source: str | None) -> dict[str, Any]:
        if source not in (None, "custom"):
            return {"data": [], "next_page": None}  # no Anthropic skills are emulated
        return cursor_page(self.ids, limit, page, lambda i: self.skills[i].to_json())

    def list_versions(self, skill_id: str, limit: int, page: str | None) -> dict[str, Any]:
        skill = self.get(skill_id)
        by_id = {v.id: v for v in skill.versions}
        return cursor_page(list(by_id), limit, page, lambda i: by_id[i].to_json())

    def create(self, upload: Upload) -> WorkspaceSkill:
        name, description = parse_skill(upload)
        display_name = upload.fields.get("display_name") or name
        if len(display_name) > _MAX_DISPLAY_NAME or "\n" in display_name:
            raise bad_request(f"display_name: one line of at most {_MAX_DISPLAY_NAME} characters")
        skill_id = self.new_id("skill_")
        now = iso_now()
        version = SkillVersion(
            self.new_id("skillver_"), skill_id, name, description, now, upload.files
        )
        skill = WorkspaceSkill(skill_id, name, display_name, now, now, [version])
        self.skills[skill_id] = skill
        bisect.insort(self.ids, skill_id)
        return skill

    def add_version(self, skill_id: str, upload: Upload) -> SkillVersion:
        skill = self.get(skill_id)
        name, description = parse_skill(upload)
        if name != skill.name:
            raise bad_request(
                f"the SKILL.md name {name!r} must stay the skill's name {skill.name!r}"
            )
        now = iso_now()
        version = SkillVersion(
            self.new_id("skillver_"), skill.id, name, description, now, upload.files
        )
        skill.versions.append(version)
        skill.updated_at = now
        return version

    def archive(self, skill_id: str, version_id: str) -> tuple[str, bytes]:
        """(name, zip) of one version: the files as uploaded, under the skill's top folder (the
        SDK's `beta.skills.versions.download`)."""
        if version_id == "latest":
            raise bad_request("name the version to download by its id: 'latest' is not accepted")
        skill = self.get(skill_id)
        return skill.name, zip_bytes(skill.version(version_id).files)

    def delete(self, skill_id: str) -> None:
        skill = self.get(skill_id)
        if self.delete_mode == "versions_first" and skill.versions:
            raise bad_request(
                "Cannot delete skill with existing versions. Delete all versions first."
            )
        del self.skills[skill_id]
        self.ids.remove(skill_id)

    def delete_version(self, skill_id: str, version_id: str) -> None:
        skill = self.get(skill_id)
        version = skill.version(version_id)
        if version_id == "latest":
            raise bad_request("name the version to delete by its id: 'latest' is not accepted")
        if len(skill.versions) == 1 and self.delete_mode == "direct":
            raise bad_request(
                f"version {version_id} is the only version of skill {skill_id}, which always "
                "holds one: delete the skill instead"
            )
        skill.versions.remove(version)
        skill.updated_at = iso_now()
