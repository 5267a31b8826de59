"""The applier against the publish target seam, with an in-memory target (no server): the
seam is all it needs, and its idempotence rules hold for any target that keeps the protocol."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import replace

import pytest

from claresia_sync.api.connect import TenantConnection
from claresia_sync.publish.applier import (
    STARTS_PER_SLOT,
    Applier,
    CallBounds,
    ItemResult,
    ItemStopped,
)
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
        self.names_holder = True
        """Whether a NameTaken says who holds the name (else `adopt` looks it up by name)."""

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
                holder = s.remote_id if self.names_holder else None
                raise NameTaken(f"name {skill.name} taken", holder_id=holder)
        live = LiveSkill(f"id{len(self.calls)}", "1", skill.content_hash, Acl(), skill.name)
        self.skills[live.remote_id] = live
        return live

    async def adopt(self, name: str, holder_id: str | None) -> LiveSkill | None:
        self._tick("adopt")
        if holder_id is not None:
            return self.skills.get(holder_id)
        return next((s for s in self.skills.values() if s.name == name), None)

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


def test_a_stop_is_asked_when_the_first_call_gets_its_slot_and_only_then() -> None:
    """An item started but waiting for its first call's slot still sees a cancel (no call);
    one that has called finishes its calls."""
    target = MemoryTarget()
    with pytest.raises(ItemStopped):
        asyncio.run(Applier(2).apply(target, item(Op.CREATE), stop=lambda: True))
    assert target.calls == []
    asked: list[list[str]] = []

    def stop_once_called() -> bool:
        asked.append(list(target.calls))
        return bool(target.calls)

    result = asyncio.run(Applier(2).apply(target, item(Op.CREATE), stop=stop_once_called))
    assert result.outcome == "created" and target.calls == ["create", "set_access"]
    assert asked == [[]]  # once, before the create


async def _under_way(bounds: CallBounds, org: str | None, holders: int) -> tuple[int, int]:
    """How many of `holders` items (of `org`) start at once, and how many of them then call."""
    release = asyncio.Event()
    started = calling = 0

    async def one() -> None:
        nonlocal started, calling
        async with bounds.start(org):
            started += 1
            async with bounds.slot(org):
                calling += 1
                await release.wait()

    tasks = [asyncio.create_task(one()) for _ in range(holders)]
    for _ in range(5):
        await asyncio.sleep(0)
    seen = (started, calling)
    release.set()
    await asyncio.gather(*tasks)
    return seen


def test_twice_as_many_items_start_as_can_call_in_all_and_per_organisation() -> None:
    assert STARTS_PER_SLOT == 2
    assert asyncio.run(_under_way(CallBounds(3), None, 10)) == (6, 3)
    assert asyncio.run(_under_way(CallBounds(8, per_org=2), "org_a", 10)) == (4, 2)


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


def test_a_publish_records_every_field_of_its_row() -> None:
    target = MemoryTarget()
    old = LiveSkill("id_old", "1", "sha256:old", OTHER_ACL, desired().name)
    target.skills[old.remote_id] = old
    planned = item(Op.UPDATE, old, Changes(new_version=True, set_access=True))
    planned.target = "claude-api:wrkspc_a"
    before = dt.datetime.now(dt.UTC)
    result = run(target, planned)
    assert (result.outcome, result.error, result.retryable) == ("updated", None, False)
    state = result.state()
    assert state is not None
    assert (state.tenant_id, state.skill_id, state.published_name) == (1, "s1", desired().name)
    assert (state.status, state.remote_skill_id, state.remote_version) == (
        "published",
        "id_old",
        "2",
    )
    assert (state.content_hash, state.access, state.last_error) == ("sha256:new", ACL, None)
    assert state.target == "claude-api:wrkspc_a"
    assert state.published_at is not None and state.published_at.tzinfo is not None
    assert before <= state.published_at <= dt.datetime.now(dt.UTC)


def test_an_access_change_alone_is_an_acl_outcome() -> None:
    target = MemoryTarget()
    old = LiveSkill("id_old", "1", "sha256:new", OTHER_ACL, desired().name)
    target.skills[old.remote_id] = old
    result = run(target, item(Op.ACL, old, Changes(set_access=True)))
    assert result.outcome == "acl" and target.calls == ["set_access"]
    assert result.live == replace(old, access=ACL) == target.skills["id_old"]


def test_a_create_that_remembers_an_old_remote_still_creates() -> None:
    """A CREATE planned from an unpublished row still carries the row's remote: it is created,
    not 'updated' in place."""
    target = MemoryTarget()
    remembered = LiveSkill("id_gone", "1", "sha256:new", ACL, desired().name)
    result = run(target, item(Op.CREATE, remembered))
    assert result.outcome == "created" and target.calls == ["create", "set_access"]
    assert result.live is not None and result.live.remote_id in target.skills


def test_a_revoked_skill_is_deleted_and_its_row_unpublished() -> None:
    target = MemoryTarget()
    live = LiveSkill("id_x", "1", "sha256:new", ACL, desired().name)
    target.skills[live.remote_id] = live
    gone = item(Op.DELETE, live)
    gone.desired = None
    result = run(target, gone)
    assert (result.outcome, target.calls, target.skills) == ("deleted", ["delete"], {})
    state = result.state()
    assert state is not None and state.status == "unpublished"
    assert (state.remote_skill_id, state.remote_version, state.access) == (None, None, None)
    assert state.published_at is None


def test_a_stray_delete_records_nothing() -> None:
    """A stray (found on the target, no row) has a tenant but no skill id: nothing to record."""
    target = MemoryTarget()
    target.skills["id_s"] = LiveSkill("id_s", "1", "h", ACL, "claresia-d-s9")
    stray = PlanItem(
        Op.DELETE, "org_d", "d", "claresia-d-s9", tenant_id=1, live=target.skills["id_s"]
    )
    result = run(target, stray)
    assert result.outcome == "deleted" and target.skills == {}
    assert result.state() is None


def test_what_an_unchanged_item_records() -> None:
    target = MemoryTarget()
    unproven = LiveSkill("id_u", "1", None, None, desired().name)  # hash and access unknown
    plain = run(target, item(Op.UNCHANGED, unproven))
    assert plain.outcome == "unchanged" and target.calls == []
    assert plain.live == replace(unproven, content_hash="sha256:new", access=ACL)
    assert plain.state() is None  # the row is already right: a no-op run writes nothing
    repaired = item(Op.UNCHANGED, unproven)
    repaired.reason = "record repaired"
    state = run(target, repaired).state()
    assert state is not None and state.status == "published"
    assert (state.remote_skill_id, state.content_hash, state.access) == ("id_u", "sha256:new", ACL)
    already_gone = item(Op.UNCHANGED)
    already_gone.desired, already_gone.reason = None, "already gone; record repaired"
    state = run(target, already_gone).state()
    assert state is not None and (state.status, state.remote_skill_id) == ("unpublished", None)


def test_a_planned_failure_and_a_failed_call_record_their_error() -> None:
    target = MemoryTarget()
    refused = item(Op.FAILED)
    refused.reason = "rbac group(s) x not in organisation org_d"
    result = run(target, refused)
    assert (result.outcome, result.error, target.calls) == ("failed", refused.reason, [])
    state = result.state()
    assert state is not None and (state.status, state.last_error) == ("failed", refused.reason)
    assert state.published_at is None

    target.fail_next = TargetError("503 overloaded", retryable=True)
    busy = run(target, item(Op.CREATE))
    assert busy.outcome == "failed" and busy.retryable is True
    target.fail_next = TargetError("403 permission_error")
    assert run(target, item(Op.CREATE)).retryable is False


def test_a_skill_without_a_transpiled_bundle_fails_alone() -> None:
    broken = item(Op.CREATE)
    assert broken.desired is not None
    broken.desired = replace(broken.desired, skill=None)
    result = run(MemoryTarget(), broken)
    assert (result.outcome, result.error) == (
        "failed",
        f"{desired().name}: no transpiled skill for {desired().name}",
    )


class BrokenTarget(MemoryTarget):
    async def create(self, skill: ClaudeSkill) -> LiveSkill:
        raise RuntimeError("boom")


def test_a_bug_in_a_target_costs_one_item() -> None:
    result = run(BrokenTarget(), item(Op.CREATE))
    assert (result.outcome, result.error) == (
        "failed",
        f"{desired().name}: unexpected RuntimeError: boom",
    )


def test_a_taken_name_without_its_holder_is_adopted_by_name() -> None:
    target = MemoryTarget()
    target.names_holder = False
    target.skills["id_old"] = LiveSkill("id_old", "1", "sha256:new", ACL, desired().name)
    result = run(target, item(Op.CREATE))
    assert result.outcome == "created" and target.calls == ["create", "adopt"]
    assert result.live == target.skills["id_old"] and len(target.skills) == 1


def test_a_taken_name_no_one_lists_fails_the_item_until_a_later_run() -> None:
    class Hidden(MemoryTarget):
        async def adopt(self, name: str, holder_id: str | None) -> LiveSkill | None:
            self._tick("adopt")
            return None

    target = Hidden()
    target.skills["id_old"] = LiveSkill("id_old", "1", "sha256:new", ACL, desired().name)
    result = run(target, item(Op.CREATE))
    assert (result.outcome, result.error) == (
        "failed",
        f"{desired().name}: 409 for {desired().name} but no skill of that name is listed; "
        "retry later",
    )


def test_concurrency_is_at_least_one() -> None:
    with pytest.raises(ValueError, match=r"^concurrency must be at least 1$"):
        Applier(0)
    assert run(MemoryTarget(), item(Op.CREATE)).outcome == "created"  # Applier(2)
    assert asyncio.run(Applier(1).apply(MemoryTarget(), item(Op.CREATE))).outcome == "created"


def _disabled(op: Op, live: LiveSkill, changes: Changes = NO_CHANGES) -> PlanItem:
    """An item of a skill the kill switch keeps, whose desired content (a later release) is
    not the live one."""
    it = item(op, live, changes)
    assert it.desired is not None
    it.desired = replace(it.desired, access=Acl(), disabled=True)
    return it


def test_a_disabled_skill_gone_behind_our_back_is_not_created_again() -> None:
    target = MemoryTarget()
    ghost = LiveSkill("id_ghost", "1", "sha256:old", ACL, desired().name)
    result = run(target, _disabled(Op.ACL, ghost, Changes(set_access=True)))
    assert (result.outcome, target.calls, target.skills) == ("deleted", ["set_access"], {})
    state = result.state()
    assert state is not None and (state.status, state.remote_skill_id) == ("unpublished", None)


def test_a_disabled_skill_keeps_its_live_content_on_record() -> None:
    target = MemoryTarget()
    old = LiveSkill("id_old", "1", "sha256:old", ACL, desired().name)
    target.skills[old.remote_id] = old
    taken = run(target, _disabled(Op.ACL, old, Changes(set_access=True)))
    assert taken.outcome == "acl" and target.calls == ["set_access"]
    state = taken.state()
    assert state is not None and (state.content_hash, state.release) == ("sha256:old", None)
    repaired = _disabled(Op.UNCHANGED, replace(old, access=Acl()))
    repaired.reason = "record repaired"
    state = run(target, repaired).state()
    assert state is not None and state.content_hash == "sha256:old" and state.access == Acl()


def test_a_disabled_skill_needs_no_transpiled_bundle_to_lose_its_access() -> None:
    target = MemoryTarget()
    old = LiveSkill("id_old", "1", "sha256:old", ACL, desired().name)
    target.skills[old.remote_id] = old
    it = _disabled(Op.ACL, old, Changes(set_access=True))
    assert it.desired is not None
    it.desired = replace(it.desired, skill=None, error="invalid Skill IR")
    assert run(target, it).outcome == "acl" and target.skills["id_old"].access == Acl()
