"""The planner, case by case, without a server or a database (issue 14)."""

from __future__ import annotations

import io
from dataclasses import replace

from rich.console import Console

from claresia_sync.api.connect import TenantConnection
from claresia_sync.publish.desired import DesiredSkill, OrgDesired
from claresia_sync.publish.planner import (
    Changes,
    LivePublication,
    Op,
    Plan,
    PlanItem,
    changes_needed,
    only_disabled,
    plan_org,
)
from claresia_sync.publish.report import plan_table
from claresia_sync.publish.targets import Access, Acl, LiveSkill
from claresia_sync.transpile import ClaudeSkill

ORG = "org_d"
ACL = Acl.of(["wrkspc_a"], ["rbac_group_x"])
OTHER_ACL = Acl.of(["wrkspc_a"], ["rbac_group_y"])


def skill(name: str, content_hash: str) -> ClaudeSkill:
    return ClaudeSkill(name, "T", "D", (), {"claresia.content_hash": content_hash})


def desired(skill_id: str = "s1", *, h: str = "sha256:new", acl: Acl = ACL) -> DesiredSkill:
    name = f"claresia-d-{skill_id}"
    return DesiredSkill(1, "d", skill_id, name, acl, skill=skill(name, h))


def org(*skills: DesiredSkill, scope: set[str] | None = None) -> OrgDesired:
    conn = TenantConnection("d", "d", ORG, "env:K")
    o = OrgDesired(conn, tenants={"d": 1, "d-sub": 2}, skills=list(skills))
    o.scope = {"d", "d-sub"} if scope is None else scope
    o.other_tenants = {"elsewhere"}
    o.deprecated = {"old"}
    return o


def live(
    remote_id: str = "skill_1", *, h: str = "sha256:new", acl: Acl = ACL, skill_id: str = "s1"
) -> LiveSkill:
    name = f"claresia-d-{skill_id}"
    return LiveSkill(remote_id, "v1", h, acl, name, owner_tenant="d", owner_skill=skill_id)


def pub(
    skill_id: str = "s1", status: str = "published", lv: LiveSkill | None = None
) -> LivePublication:
    if lv is None and status != "unpublished":
        lv = live(skill_id=skill_id)
    return LivePublication(1, "d", skill_id, f"claresia-d-{skill_id}", status, lv)


def only(o: OrgDesired, *args: object, **kw: object) -> PlanItem:
    [item] = plan_org(o, *args, **kw).items  # type: ignore[arg-type]
    return item


# --- the one decision ---------------------------------------------------------------------


def test_changes_needed_compares_hash_and_access() -> None:
    d = desired()
    assert changes_needed(live(), d) == Changes()
    assert changes_needed(live(h="sha256:old"), d) == Changes(new_version=True)
    assert changes_needed(live(acl=OTHER_ACL), d) == Changes(set_access=True)
    assert changes_needed(live(), d, access_settled=False) == Changes(set_access=True)
    unknown = replace(live(), content_hash=None, access=None)  # a target that cannot prove them
    assert changes_needed(unknown, d) == Changes(new_version=True, set_access=True)


# --- desired skills against the publication rows ------------------------------------------


def test_a_skill_that_cannot_be_published_fails_with_its_reason() -> None:
    d = replace(desired(), skill=None, error="invalid Skill IR: /steps: too short")
    item = only(org(d), [pub()])
    assert (item.op, item.reason) == (Op.FAILED, "invalid Skill IR: /steps: too short")
    assert item.live == live()  # recorded as is


def test_a_new_skill_is_created() -> None:
    item = only(org(desired()), [])
    assert (item.op, item.reason, item.live) == (Op.CREATE, "new", None)


def test_an_unpublished_row_is_created_again() -> None:
    item = only(org(desired()), [pub(status="unpublished")])
    assert (item.op, item.reason) == (Op.CREATE, "new")


def test_an_unpublished_row_that_remembers_a_remote_is_created_again() -> None:
    item = only(org(desired()), [pub(status="unpublished", lv=live())])
    assert (item.op, item.reason) == (Op.CREATE, "new")


def test_an_unchanged_skill_has_nothing_to_do() -> None:
    item = only(org(desired()), [pub()])
    assert (item.op, item.reason, item.changes) == (Op.UNCHANGED, "", Changes())
    assert item.remote_id == "skill_1" and item.key == (1, "s1")


def test_changed_content_is_a_new_version() -> None:
    item = only(org(desired(h="sha256:newer")), [pub()])
    assert (item.op, item.reason) == (Op.UPDATE, "content changed")
    assert item.changes == Changes(new_version=True)


def test_changed_access_is_an_acl_change() -> None:
    item = only(org(desired(acl=OTHER_ACL)), [pub()])
    assert (item.op, item.reason, item.changes) == (
        Op.ACL,
        "access changed",
        Changes(set_access=True),
    )


def test_content_and_access_changed_is_one_update_that_says_both() -> None:
    o = org(desired(h="sha256:newer", acl=OTHER_ACL))
    plan = plan_org(o, [pub()])
    assert plan.items[0].op == Op.UPDATE
    assert plan.items[0].changes == Changes(new_version=True, set_access=True)
    out = Console(file=io.StringIO(), width=300)
    out.print(plan_table(Plan([plan], check_remote=False)))
    assert "content changed; new version + ACL" in out.file.getvalue()  # type: ignore[attr-defined]


def test_after_a_failed_run_the_access_is_set_again() -> None:
    item = only(org(desired()), [pub(status="failed")])
    assert (item.op, item.reason) == (Op.ACL, "access changed")


# --- desired skills against the target's own list (--force, drift) ------------------------


def test_missing_remotely_is_created_again() -> None:
    item = only(org(desired()), [pub()], remote=[])
    assert (item.op, item.reason, item.live) == (Op.CREATE, "missing remotely", None)


def test_missing_remotely_without_a_row_is_new() -> None:
    item = only(org(desired()), [], remote=[])
    assert (item.op, item.reason) == (Op.CREATE, "new")


def test_found_remotely_by_name_is_adopted_and_compared() -> None:
    item = only(org(desired()), [], remote=[live("skill_9")])
    assert (item.op, item.reason, item.remote_id) == (
        Op.UNCHANGED,
        "found remotely by name",
        "skill_9",
    )
    changed = only(org(desired(h="sha256:newer")), [], remote=[live("skill_9")])
    assert (changed.op, changed.reason) == (Op.UPDATE, "found remotely by name")


def test_the_target_overrides_the_row() -> None:
    edited = live(h="sha256:edited-behind-our-back", acl=OTHER_ACL)
    item = only(org(desired()), [pub()], remote=[edited])
    assert (item.op, item.reason) == (Op.UPDATE, "content changed")
    assert item.changes == Changes(new_version=True, set_access=True)
    assert item.live == edited


def test_a_hash_the_target_cannot_prove_is_the_rows_for_the_same_skill_only() -> None:
    """A target that cannot prove the content hash (`content_hash=None`) keeps the row's for
    the skill the row records; a skill found by name under another id must get a version."""
    unproven = replace(live(), content_hash=None)
    item = only(org(desired()), [pub()], remote=[unproven])
    assert (item.op, item.reason, item.changes) == (Op.UNCHANGED, "", Changes())
    assert item.live == live()  # the row's hash, the target's id and access
    other = replace(live("skill_9"), content_hash=None)
    found = only(org(desired()), [pub()], remote=[other])
    assert (found.op, found.reason) == (Op.UPDATE, "found remotely by name")
    assert found.changes == Changes(new_version=True) and found.live == other
    new = only(org(desired()), [], remote=[unproven])
    assert new.op == Op.UPDATE and new.live == unproven


def test_a_stale_row_of_an_unchanged_skill_is_repaired() -> None:
    item = only(org(desired()), [pub(status="failed")], remote=[live()])
    assert (item.op, item.reason) == (Op.UNCHANGED, "record repaired")
    assert only(org(desired()), [pub()], remote=[live()]).reason == ""


# --- a skill the kill switch keeps (claude-enterprise): access only, never content --------

NOBODY = Acl.of([], [])  # the access nobody has, as `disabled_access` gives it


def off(h: str = "sha256:release-2") -> DesiredSkill:
    """Disabled, with a release made since: its desired content differs from what is live."""
    return replace(desired(h=h, acl=NOBODY), disabled=True)


def test_a_disabled_skill_gets_its_access_taken_and_no_new_version() -> None:
    for remote in (None, [live()]):
        item = only(org(off()), [pub()], remote=remote)
        assert (item.op, item.reason) == (Op.ACL, "disabled (kill switch)"), remote
        assert item.changes == Changes(set_access=True) and item.live == live()


def test_a_disabled_skill_already_without_access_is_left_as_it_is() -> None:
    kept = pub(lv=live(h="sha256:release-1", acl=NOBODY))
    for remote in (None, [live(h="sha256:release-1", acl=NOBODY)]):
        item = only(org(off()), [kept], remote=remote)
        assert (item.op, item.reason, item.changes) == (Op.UNCHANGED, "", Changes()), remote


def test_a_disabled_skill_is_never_created() -> None:
    for rows, remote in (([], None), ([], []), ([pub(status="unpublished")], None)):
        item = only(org(off()), rows, remote=remote)
        assert (item.op, item.reason, item.desired) == (Op.UNCHANGED, "", None), (rows, remote)
    gone = only(org(off()), [pub()], remote=[])  # deleted behind our back: stays deleted
    assert (gone.op, gone.reason, gone.desired) == (
        Op.UNCHANGED,
        "already gone; record repaired",
        None,
    )


def test_a_disabled_skill_with_a_broken_release_still_loses_its_access() -> None:
    broken = replace(off(), skill=None, error="invalid Skill IR: /steps: too short")
    assert only(org(broken), [pub()]).op == Op.ACL


def test_the_kill_switch_job_keeps_only_the_items_of_disabled_skills() -> None:
    o = org(off(), desired("s2", h="sha256:newer"))  # s2: a new release, pending
    o.disabled = {("d", "s1"), ("d", "gone")}
    stray = live("skill_8", skill_id="gone")
    plan = plan_org(
        o,
        [pub(), pub("s2"), pub("revoked")],
        remote=[
            live(),
            live("skill_2", skill_id="s2", h="sha256:x"),
            live("skill_3", skill_id="revoked"),
            stray,
        ],
    )
    assert {i.op for i in plan.items} >= {Op.ACL, Op.UPDATE, Op.DELETE}
    kept = only_disabled(plan).items
    assert [(i.op, i.name, i.reason) for i in kept] == [
        (Op.ACL, "claresia-d-s1", "disabled (kill switch)"),
        (Op.DELETE, "claresia-d-gone", "disabled (kill switch) (found remotely)"),
    ]


# --- recorded skills that are no longer desired -------------------------------------------


def test_a_revoked_grant_is_deleted() -> None:
    item = only(org(), [pub()])
    assert (item.op, item.reason, item.remote_id) == (Op.DELETE, "no longer granted", "skill_1")


def test_a_deprecated_skill_is_deleted_saying_so() -> None:
    item = only(org(), [pub("old")])
    assert (item.op, item.reason) == (Op.DELETE, "deprecated")


def test_an_unpublished_row_is_left_alone() -> None:
    assert plan_org(org(), [pub(status="unpublished")]).items == []


def test_already_gone_only_repairs_the_row() -> None:
    item = only(org(), [pub()], remote=[])
    assert (item.op, item.reason) == (Op.UNCHANGED, "already gone; record repaired")
    no_remote_id = only(org(), [LivePublication(1, "d", "s1", "claresia-d-s1", "failed", None)])
    assert no_remote_id.op == Op.UNCHANGED


def test_a_revoked_grant_found_on_the_target_is_deleted_there() -> None:
    """With the target's list, the delete goes to the skill the target holds under the name
    (not the row's remembered id) and records into the row."""
    moved = live("skill_7")
    item = only(org(), [pub()], remote=[moved])
    assert (item.op, item.reason, item.live) == (Op.DELETE, "no longer granted", moved)
    assert (item.org_id, item.tenant_slug, item.name) == (ORG, "d", "claresia-d-s1")
    assert (item.key, item.target) == ((1, "s1"), "org-skills")


# --- our skills on the target that nothing recorded wants ---------------------------------


def stray(owner: str | None, skill_id: str = "s5") -> LiveSkill:
    return LiveSkill("skill_s", "v", "h", ACL, f"claresia-{owner}-{skill_id}", owner, skill_id)


def test_a_stray_of_a_tenant_in_scope_is_deleted() -> None:
    item = only(org(), [], remote=[stray("d")])
    assert (item.op, item.reason, item.tenant_id) == (
        Op.DELETE,
        "no longer granted (found remotely)",
        1,
    )
    assert item.skill_id is None and item.key is None  # no row to record into


def test_every_stray_is_deleted_whatever_comes_before_it() -> None:
    """Strays among skills the run handles and skills of others: each stray is one delete of
    the skill the target listed, named as the target names it."""
    remote = [
        live(skill_id="s1"),  # desired: handled, not a stray
        stray("elsewhere", "s2"),  # another organisation's tenant: never touched
        replace(stray("d", "old"), remote_id="skill_old"),  # a deprecated skill
        stray("d-sub", "s9"),
    ]
    plan = plan_org(org(desired()), [pub()], remote=remote)
    deletes = [i for i in plan.items if i.op == Op.DELETE]
    assert [(i.name, i.reason, i.tenant_slug, i.tenant_id) for i in deletes] == [
        ("claresia-d-old", "deprecated (found remotely)", "d", 1),
        ("claresia-d-sub-s9", "no longer granted (found remotely)", "d-sub", 2),
    ]
    assert [i.live for i in deletes] == [remote[2], remote[3]]
    assert {i.org_id for i in plan.items} == {ORG}


def test_a_stray_of_a_removed_tenant_is_deleted_only_in_a_whole_organisation_run() -> None:
    item = only(org(), [], remote=[stray("gone")])
    assert (item.op, item.reason) == (Op.DELETE, "tenant removed (found remotely)")
    assert plan_org(org(scope={"d"}), [], remote=[stray("gone")]).items == []


def test_a_stray_of_another_organisation_or_of_nobody_is_never_touched() -> None:
    assert plan_org(org(), [], remote=[stray("elsewhere"), stray(None)]).items == []
    # a sub-tenant out of this run's scope: its skills are not this run's business
    assert plan_org(org(scope={"d"}), [], remote=[stray("d-sub")]).items == []


# --- twins: two copies of ours for one name (issue 21) -------------------------------------


def ops(items: list[PlanItem]) -> list[tuple[Op, str | None, str | None]]:
    return sorted((i.op, i.remote_id, i.twin_of) for i in items)


def test_of_twins_the_recorded_copy_stays_and_the_other_is_deleted() -> None:
    older, newer = live("skill_old"), live("skill_new")
    # The row names the newer one (the last of two runs to record won): the older goes.
    plan = plan_org(org(desired()), [pub(lv=newer)], remote=[older, newer])
    assert ops(plan.items) == [
        (Op.DELETE, "skill_old", "skill_new"),
        (Op.UNCHANGED, "skill_new", None),
    ]
    twin = next(i for i in plan.items if i.op == Op.DELETE)
    assert twin.key is None and twin.reason == "twin of skill_new (found remotely)"
    assert twin.tenant_id == 1 and twin.target == plan.org.connection.target_key
    # Recorded the older: the newer goes. Nothing recorded (a lost database): the older stays.
    assert ops(plan_org(org(desired()), [pub(lv=older)], remote=[older, newer]).items)[0] == (
        Op.DELETE,
        "skill_new",
        "skill_old",
    )
    assert ops(plan_org(org(desired()), [], remote=[older, newer]).items) == [
        (Op.DELETE, "skill_new", "skill_old"),
        (Op.UNCHANGED, "skill_old", None),
    ]


def test_a_revoked_grant_deletes_every_copy() -> None:
    a, b, c = live("skill_a"), live("skill_b"), live("skill_c")
    recorded = ops(plan_org(org(), [pub(lv=b)], remote=[a, b, c]).items)
    assert recorded == [
        (Op.DELETE, "skill_a", "skill_b"),
        (Op.DELETE, "skill_b", None),
        (Op.DELETE, "skill_c", "skill_b"),
    ]
    stray_twins = ops(plan_org(org(), [], remote=[a, b]).items)  # no row: found remotely
    assert stray_twins == [(Op.DELETE, "skill_a", None), (Op.DELETE, "skill_b", "skill_a")]


def test_twins_of_a_tenant_out_of_scope_are_left_to_its_own_run() -> None:
    twins = [stray("d-sub"), replace(stray("d-sub"), remote_id="skill_t")]
    assert plan_org(org(scope={"d"}), [], remote=twins).items == []
    assert plan_org(org(), [], remote=[stray("elsewhere"), stray("elsewhere")]).items == []


# --- pre-flight (issue 13 item 10) --------------------------------------------------------


def refuse_group_x(access: Access) -> str | None:
    assert isinstance(access, Acl)
    if "rbac_group_x" in access.rbac_group_ids:
        return "rbac group(s) rbac_group_x not in organisation org_d (D): fix the archetype"
    return None


def test_preflight_fails_a_skill_whose_access_cannot_be_written() -> None:
    item = only(org(desired()), [], check=refuse_group_x)
    assert item.op == Op.FAILED and "rbac_group_x not in organisation org_d" in item.reason
    acl_change = only(org(desired()), [pub(lv=live(acl=OTHER_ACL))], check=refuse_group_x)
    assert acl_change.op == Op.FAILED


def test_preflight_leaves_skills_whose_access_is_not_written() -> None:
    assert only(org(desired()), [pub()], check=refuse_group_x).op == Op.UNCHANGED
    new_version = only(org(desired(h="sha256:newer")), [pub()], check=refuse_group_x)
    assert new_version.op == Op.UPDATE  # content only: the live access is not touched
    assert only(org(desired(acl=OTHER_ACL)), [], check=refuse_group_x).op == Op.CREATE


# --- what every item carries --------------------------------------------------------------


def test_every_item_names_its_organisation_tenant_skill_and_target() -> None:
    """The applier and the records read these fields: an item of a claude-api workspace target
    carries that target's key (`publication.target`), whatever the case."""
    conn = TenantConnection("d", "d", ORG, "env:K", target="claude-api", workspace_id="wrkspc_a")
    o = org(desired("s1"), desired("s2", h="sha256:newer"), desired("s3"))
    o.connection = conn
    plan = plan_org(o, [pub("s2"), pub("s3"), pub("s4")], remote=None)
    by_name = {i.name: i for i in plan.items}
    assert {n: i.op for n, i in by_name.items()} == {
        "claresia-d-s1": Op.CREATE,
        "claresia-d-s2": Op.UPDATE,
        "claresia-d-s3": Op.UNCHANGED,
        "claresia-d-s4": Op.DELETE,
    }
    for name, item in by_name.items():
        skill_id = name.removeprefix("claresia-d-")
        assert (item.org_id, item.tenant_slug, item.target) == (ORG, "d", "claude-api:wrkspc_a")
        assert (item.tenant_id, item.skill_id, item.key) == (1, skill_id, (1, skill_id))
        if item.op != Op.DELETE:
            assert item.desired is not None and item.desired.name == name
    assert plan.org is o
