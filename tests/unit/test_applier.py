"""The applier against the publish target seam, with an in-memory target (no server): the
seam is all it needs, and its idempotence rules hold for any target that keeps the protocol."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from claresia_sync.api.connect import TenantConnection
from claresia_sync.publish.applier import Applier, ItemResult
from claresia_sync.publish.planner import Changes, Op, PlanItem
from claresia_sync.publish.targets import (
    Access,
    AccessCheck,
    Acl,
    LiveSkill,
    NameTaken,
    SkillGone,
    TargetError,
)
from claresia_sync.transpile import ClaudeSkill
from tests.unit.test_planner import ACL, OTHER_ACL, desired


class MemoryTarget:
    """A target that keeps its skills in a dict (a second implementation of the protocol)."""

    def __init__(self) -> None:
        self.connection = TenantConnection("d", "d", "org_d", "env:K")
        self.skills: dict[str, LiveSkill] = {}
        self.fail_next: TargetError | None = None
        self.calls: list[str] = []

    def _tick(self, call: str) -> None:
        self.calls.append(call)
        if self.fail_next is not None:
            failure, self.fail_next = self.fail_next, None
            raise failure

    async def gate(self) -> str | None:
        return None

    async def access_check(self) -> AccessCheck:
        return lambda access: None

    async def list_ours(self) -> list[LiveSkill]:
        return list(self.skills.values())

    async def create(self, skill: ClaudeSkill) -> LiveSkill:
        self._tick("create")
        for s in self.skills.values():
            if s.name == skill.name:
                raise NameTaken(f"name {skill.name} taken", holder_id=s.remote_id)
        live = LiveSkill(f"id{len(self.calls)}", "1", skill.content_hash, Acl(), skill.name)
        self.skills[live.remote_id] = live
        return live

    async def adopt(self, name: str, holder_id: str | None) -> LiveSkill | None:
        self._tick("adopt")
        return self.skills.get(holder_id or "")

    async def new_version(self, remote_id: str, skill: ClaudeSkill) -> LiveSkill:
        self._tick("new_version")
        if remote_id not in self.skills:
            raise SkillGone(f"{remote_id} not found")
        self.skills[remote_id] = replace(
            self.skills[remote_id], version="2", content_hash=skill.content_hash
        )
        return self.skills[remote_id]

    async def set_access(self, remote_id: str, access: Access) -> LiveSkill:
        self._tick("set_access")
        if remote_id not in self.skills:
            raise SkillGone(f"{remote_id} not found")
        self.skills[remote_id] = replace(self.skills[remote_id], access=access)
        return self.skills[remote_id]

    async def delete(self, remote_id: str) -> None:
        self._tick("delete")
        if self.skills.pop(remote_id, None) is None:
            raise SkillGone(f"{remote_id} not found")

    async def aclose(self) -> None:
        pass


def run(target: MemoryTarget, item: PlanItem) -> ItemResult:
    return asyncio.run(Applier(2).apply(target, item))


NO_CHANGES = Changes()


def item(op: Op, live: LiveSkill | None = None, changes: Changes = NO_CHANGES) -> PlanItem:
    d = desired()
    return PlanItem(
        op, "org_d", "d", d.name, tenant_id=1, skill_id="s1", desired=d, changes=changes, live=live
    )


def test_create_then_access() -> None:
    target = MemoryTarget()
    result = run(target, item(Op.CREATE))
    assert result.outcome == "created" and target.calls == ["create", "set_access"]
    state = result.state()
    assert state is not None and state.status == "published" and state.access == ACL
    assert state.content_hash == "sha256:new" and state.remote_skill_id in target.skills


def test_a_taken_name_of_ours_is_adopted_and_brought_up_to_date() -> None:
    target = MemoryTarget()
    old = LiveSkill("id_old", "1", "sha256:old", OTHER_ACL, desired().name)
    target.skills[old.remote_id] = old
    result = run(target, item(Op.CREATE))
    assert result.outcome == "created" and len(target.skills) == 1  # no twin
    assert target.calls == ["create", "adopt", "new_version", "set_access"]
    assert target.skills["id_old"].content_hash == "sha256:new"


def test_a_skill_gone_behind_our_back_is_created_again() -> None:
    target = MemoryTarget()
    ghost = LiveSkill("id_ghost", "1", "sha256:old", ACL, desired().name)
    result = run(target, item(Op.UPDATE, ghost, Changes(new_version=True)))
    assert result.outcome == "created"
    assert target.calls == ["new_version", "create", "set_access"]
    assert result.live is not None and result.live.remote_id != "id_ghost"


def test_deleting_what_is_gone_counts_as_done() -> None:
    target = MemoryTarget()
    gone = item(Op.DELETE, LiveSkill("id_x"))
    gone.desired = None
    result = run(target, gone)
    assert result.outcome == "deleted"
    state = result.state()
    assert state is not None and state.status == "unpublished" and state.remote_skill_id is None


def test_a_target_error_fails_the_item_with_its_hint() -> None:
    target = MemoryTarget()
    target.fail_next = TargetError("403 permission_error on PUT ...", hint="re-mint the key")
    result = run(target, item(Op.CREATE))
    assert result.outcome == "failed"
    assert result.error == f"{desired().name}: 403 permission_error on PUT ... — re-mint the key"
    state = result.state()
    assert state is not None and state.status == "failed"


class VanishingTarget(MemoryTarget):
    """Deleted behind our back after each new version (an operator's clean-up racing a run),
    or, with `always`, whenever its access is set."""

    def __init__(self, *, always: bool = False) -> None:
        super().__init__()
        self.always = always
        self.vanish_after_version = True

    async def new_version(self, remote_id: str, skill: ClaudeSkill) -> LiveSkill:
        live = await super().new_version(remote_id, skill)
        if self.vanish_after_version:
            self.vanish_after_version = False
            del self.skills[remote_id]
        return live

    async def set_access(self, remote_id: str, access: Access) -> LiveSkill:
        if self.always:
            self.skills.pop(remote_id, None)
        return await super().set_access(remote_id, access)


def test_an_access_change_on_a_skill_gone_behind_our_back_creates_it_again() -> None:
    """`SkillGone` from `set_access` is not a success: the skill is made again with its access,
    and the row records the new one (not the ghost's id, which no one could use)."""
    target = MemoryTarget()
    ghost = LiveSkill("id_ghost", "1", "sha256:new", OTHER_ACL, desired().name)
    result = run(target, item(Op.ACL, ghost, Changes(set_access=True)))
    assert result.outcome == "created", result
    assert target.calls == ["set_access", "create", "set_access"]
    assert result.live is not None and result.live.remote_id != "id_ghost"
    assert target.skills[result.live.remote_id].access == ACL
    state = result.state()
    assert state is not None and state.status == "published"
    assert state.remote_skill_id == result.live.remote_id and state.access == ACL


def test_a_skill_gone_between_its_new_version_and_its_access_is_created_again() -> None:
    target = VanishingTarget()
    old = LiveSkill("id_old", "1", "sha256:old", OTHER_ACL, desired().name)
    target.skills[old.remote_id] = old
    result = run(target, item(Op.UPDATE, old, Changes(new_version=True, set_access=True)))
    assert result.outcome == "created", result
    assert target.calls == ["new_version", "set_access", "create", "set_access"]
    assert result.live is not None and list(target.skills) == [result.live.remote_id]
    assert target.skills[result.live.remote_id].access == ACL


def test_a_skill_that_keeps_vanishing_fails_the_item() -> None:
    target = VanishingTarget(always=True)
    target.vanish_after_version = False
    ghost = LiveSkill("id_ghost", "1", "sha256:new", OTHER_ACL, desired().name)
    result = run(target, item(Op.ACL, ghost, Changes(set_access=True)))
    assert result.outcome == "failed"
    assert (
        result.error == f"{desired().name}: {desired().name} vanished twice while being published"
    )
    assert target.calls == ["set_access", "create", "set_access", "create"]
    state = result.state()
    assert state is not None and state.status == "failed"
