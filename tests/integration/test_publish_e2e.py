"""The publisher end to end: real PostgreSQL, the emulator over HTTP, the demo tenants."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
import yaml
from sqlalchemy import Engine, select, text, update
from sqlalchemy.orm import Session

from claresia_sync.catalog_store import import_catalog
from claresia_sync.db.models import CatalogSkill, Publication, PublishJob
from claresia_sync.emulator import EmulatorServer
from claresia_sync.ir import load_catalog
from claresia_sync.publish import JobOutcome, claim, enqueue, reconcile, run_job, run_next_job
from claresia_sync.release_store import cut_release
from claresia_sync.tenancy import apply_tenants, parse_tenants
from claresia_sync.transpile import transpile
from tests.fixtures.emulator import DAINESE_ENGONLY_KEY, DAINESE_KEY, DAINESE_ORG, api_client

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "deploy" / "tenants.example.yaml"
CATALOG = ROOT / "skills_ir" / "catalog"

ENG = {
    "incident-postmortem",
    "code-review-checklist",
    "standup-notes",
    "sql-query-helper",
    "release-notes",
}
SRE = {"incident-postmortem", "standup-notes"}
CORP = {"prd-review", "meeting-summary", "weekly-status-report", "okr-drafting", "release-notes"}
SALES = {"customer-email-reply", "meeting-summary", "weekly-status-report"}


def names(tenant: str, skills: set[str]) -> set[str]:
    return {f"claresia-{tenant}-{s}" for s in skills}


def tenants_data(emulator: EmulatorServer) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    for t in data["tenants"]:
        for target in [t.get("connection"), *(t.get("targets") or {}).values()]:
            if target is not None:
                target["base_url"] = emulator.base_url
    return data


def apply(engine: Engine, data: dict[str, Any]) -> None:
    with Session(engine) as s:
        apply_tenants(s, parse_tenants(yaml.safe_dump(data), "t.yaml"), source="t.yaml")
        s.commit()


def catalog_and_tenants(engine: Engine, emulator: EmulatorServer) -> dict[str, Any]:
    """The example catalog and the demo tenants (pointing at `emulator`), applied; the data."""
    import_example_catalog(engine)
    data = tenants_data(emulator)
    apply(engine, data)
    return data


def import_example_catalog(engine: Engine) -> None:
    loaded = load_catalog([CATALOG])
    assert loaded.ok, loaded.problems
    with Session(engine) as s:
        import_catalog(s, loaded.skills)
        s.commit()


@pytest.fixture
def world(engine: Engine, emulator_env: EmulatorServer) -> Iterator[dict[str, Any]]:
    """Catalog imported, demo tenants applied (pointing at the emulator); nothing published."""
    yield catalog_and_tenants(engine, emulator_env)


def publish(engine: Engine, tenant: str | None = None, *, force: bool = False) -> JobOutcome:
    with Session(engine) as s:
        job_id = enqueue(s, tenant, force=force)
        s.commit()
    job = claim(engine, "test", job_id)
    assert job is not None
    return asyncio.run(run_job(engine, job, concurrency=4))


def visible(emulator: EmulatorServer, user: str, org: str = DAINESE_ORG) -> set[str]:
    answer = httpx2.get(
        f"{emulator.base_url}/_emulator/visible", params={"org_id": org, "user_id": user}
    )
    answer.raise_for_status()
    return {s["name"] for s in answer.json()["data"]}


def test_onboarding_makes_exactly_the_granted_skills_visible(
    engine: Engine, emulator: EmulatorServer, world: dict[str, Any]
) -> None:
    outcome = publish(engine, "dainese")
    assert outcome.status == "succeeded", outcome.errors
    assert outcome.stats["created"] == 13 and outcome.stats["failed"] == 0
    assert outcome.stats["publish_lag_s"] is not None and outcome.stats["publish_lag_s"] >= 0

    assert visible(emulator, "user_dainese_ana") == names("dainese-eng", ENG)
    assert visible(emulator, "user_dainese_giulia") == names("dainese-eng", SRE)
    assert visible(emulator, "user_dainese_marco") == names("dainese-eng", ENG)
    assert visible(emulator, "user_dainese_luca") == names("dainese-corp", CORP)
    # In the engineering workspace too, but only in the product group.
    assert visible(emulator, "user_dainese_sofia") == names("dainese-corp", CORP)
    assert visible(emulator, "user_dainese_paolo") == names("dainese", SALES)
    assert visible(emulator, "user_dainese_elena") == names("dainese", SALES)
    assert visible(emulator, "user_dainese_guest") == set()
    # Only the tenant asked for: nothing in Acme's organisation.
    assert visible(emulator, "user_acme_bob", "org_acme") == set()

    with Session(engine) as s:
        pubs = list(s.scalars(select(Publication)))
        job = s.get(PublishJob, outcome.job_id)
    assert len(pubs) == 13
    assert {p.status for p in pubs} == {"published"}
    assert all(p.remote_skill_id and p.content_hash for p in pubs)
    assert job is not None and job.status == "succeeded" and job.finished_at is not None
    assert job.lag_seconds is not None and job.stats["created"] == 13


def test_second_republish_makes_no_write_call(
    engine: Engine, emulator: EmulatorServer, world: dict[str, Any]
) -> None:
    assert publish(engine).status == "succeeded"
    emulator.stats.reset()
    again = publish(engine)
    assert again.status == "succeeded"
    # acme: 5 skills; ferretti: 5 plugins; vespucci: 2 workspace skills
    assert again.stats["unchanged"] == 13 + 5 + 5 + 2
    assert again.stats["created"] == again.stats["updated"] == again.stats["acl"] == 0
    assert emulator.stats.writes() == 0
    assert emulator.stats.count() > 0  # it did look (the zero-retention gate)


def test_removing_a_grant_takes_the_skill_away(
    engine: Engine, emulator: EmulatorServer, world: dict[str, Any]
) -> None:
    publish(engine, "dainese")
    data = copy.deepcopy(world)
    eng = data["tenants"][0]["sub_tenants"][0]
    eng["archetypes"][0]["grants"].remove("sql-query-helper")  # only the engineers had it
    eng["archetypes"][0]["grants"].remove("standup-notes")  # the SREs keep it
    apply(engine, data)

    outcome = publish(engine, "dainese")
    assert outcome.status == "succeeded", outcome.errors
    assert outcome.stats["deleted"] == 1 and outcome.stats["acl"] == 1
    assert visible(emulator, "user_dainese_ana") == names(
        "dainese-eng", ENG - {"sql-query-helper", "standup-notes"}
    )
    assert visible(emulator, "user_dainese_giulia") == names("dainese-eng", SRE)
    remote = {s.name for s in emulator.state.org(DAINESE_ORG).skills.values()}
    assert "claresia-dainese-eng-sql-query-helper" not in remote
    with Session(engine) as s:
        gone = s.scalar(select(Publication).where(Publication.skill_id == "sql-query-helper"))
    assert gone is not None and gone.status == "unpublished" and gone.remote_skill_id is None


def test_a_deprecated_skill_disappears(
    engine: Engine, emulator: EmulatorServer, world: dict[str, Any]
) -> None:
    publish(engine, "dainese")
    with Session(engine) as s:
        s.execute(
            update(CatalogSkill)
            .where(CatalogSkill.skill_id == "release-notes")
            .values(deprecated=True)
        )
        cut_release(s)
        s.commit()
    outcome = publish(engine, "dainese")
    assert outcome.stats["deleted"] == 2  # dainese-eng and dainese-corp
    assert visible(emulator, "user_dainese_ana") == names("dainese-eng", ENG - {"release-notes"})
    assert visible(emulator, "user_dainese_luca") == names("dainese-corp", CORP - {"release-notes"})


def test_force_repairs_what_was_changed_behind_our_back(
    engine: Engine, emulator: EmulatorServer, world: dict[str, Any]
) -> None:
    publish(engine, "dainese")
    org = emulator.state.org(DAINESE_ORG)
    by_name = {s.name: s.id for s in org.skills.values()}
    deleted = "claresia-dainese-eng-incident-postmortem"
    opened = "claresia-dainese-corp-prd-review"
    edited = "claresia-dainese-meeting-summary"

    async def tamper() -> None:
        client, _ = api_client(emulator)
        async with client:
            await client.delete_skill(DAINESE_ORG, by_name[deleted])
            # Opened to everyone in engineering.
            await client.set_skill_access(
                DAINESE_ORG,
                by_name[opened],
                ["wrkspc_dainese_eng"],
                ["rbac_group_dainese_engineers"],
            )
            skill = await client.get_skill(DAINESE_ORG, by_name[edited])
            name = skill.name
            await client.create_skill_version(
                DAINESE_ORG,
                by_name[edited],
                {
                    "description": "edited by hand",
                    "files": [
                        {
                            "path": f"{name}/SKILL.md",
                            "content": f"---\nname: {name}\ndescription: edited by hand\n---\nhi\n",
                        }
                    ],
                    # keeps our metadata, hash claim included: only the server's hash can tell
                    "metadata": dict(skill.metadata),
                },
            )

    asyncio.run(tamper())
    assert visible(emulator, "user_dainese_ana") >= {opened}
    # The table still says all is well: a normal run changes nothing.
    emulator.stats.reset()
    assert publish(engine, "dainese").stats["unchanged"] == 13
    assert emulator.stats.writes() == 0

    outcome = publish(engine, "dainese", force=True)
    assert outcome.status == "succeeded", outcome.errors
    assert outcome.stats["created"] == 1
    assert outcome.stats["acl"] == 1
    assert outcome.stats["updated"] == 1
    assert visible(emulator, "user_dainese_ana") == names("dainese-eng", ENG)
    assert visible(emulator, "user_dainese_luca") == names("dainese-corp", CORP)
    after = {s.name: s for s in org.skills.values()}
    assert after[edited].description != "edited by hand"
    assert len(after) == 13


def test_a_bad_ir_fails_only_that_skill(
    engine: Engine, emulator: EmulatorServer, world: dict[str, Any]
) -> None:
    with Session(engine) as s:
        row = s.get(CatalogSkill, "prd-review")
        assert row is not None
        broken = dict(row.ir)
        broken["steps"] = []  # at least one step is required
        row.ir = broken
        row.ir_hash = "sha256:" + "0" * 64  # a changed IR has another hash (catalog import)
        s.flush()
        cut_release(s)
        s.commit()
    outcome = publish(engine, "dainese")
    assert outcome.status == "partial"
    assert outcome.stats["failed"] == 1 and outcome.stats["created"] == 12
    [error] = outcome.errors
    assert error["skill_id"] == "prd-review" and "/steps" in error["error"]
    assert visible(emulator, "user_dainese_luca") == names("dainese-corp", CORP - {"prd-review"})
    with Session(engine) as s:
        pub = s.scalar(select(Publication).where(Publication.skill_id == "prd-review"))
        job = s.get(PublishJob, outcome.job_id)
    assert pub is not None and pub.status == "failed" and "/steps" in (pub.last_error or "")
    assert job is not None and job.status == "partial" and job.errors[0]["skill_id"] == "prd-review"


def test_a_skill_created_before_a_crash_is_adopted_not_duplicated(
    engine: Engine, emulator: EmulatorServer, world: dict[str, Any]
) -> None:
    # The first run created the skill and crashed before recording it (an older version).
    with Session(engine) as s:
        row = s.get(CatalogSkill, "incident-postmortem")
        assert row is not None
        from claresia_sync.ir import SkillIR

        ir = SkillIR.model_validate(row.ir)
    old = transpile(ir.model_copy(update={"summary": "An older summary."}), "dainese-eng")

    async def precreate() -> str:
        client, _ = api_client(emulator)
        async with client:
            return (await client.create_skill(DAINESE_ORG, old.payload())).id

    existing = asyncio.run(precreate())
    outcome = publish(engine, "dainese")
    assert outcome.status == "succeeded", outcome.errors
    skills = [s for s in emulator.state.org(DAINESE_ORG).skills.values() if s.name == old.name]
    assert [s.id for s in skills] == [existing]
    assert skills[0].content_hash == transpile(ir, "dainese-eng").content_hash
    assert old.name in visible(emulator, "user_dainese_giulia")
    with Session(engine) as s:
        pub = s.scalar(select(Publication).where(Publication.published_name == old.name))
    assert pub is not None and pub.remote_skill_id == existing


def test_zero_retention_off_refuses_the_organisation(
    engine: Engine, emulator: EmulatorServer, world: dict[str, Any]
) -> None:
    emulator.state.set_zero_data_retention(DAINESE_ORG, False)
    outcome = publish(engine)
    assert outcome.status == "partial"  # Acme went ahead
    refusal = [e for e in outcome.errors if e["org_id"] == DAINESE_ORG]
    assert refusal and "Enable zero-retention in Anthropic Console" in refusal[0]["error"]
    assert emulator.stats.count(method="POST", route="/v1/organizations/{org_id}/skills") == 5
    assert emulator.state.org(DAINESE_ORG).skills == {}


def test_force_deletes_skills_of_a_removed_tenant_and_nothing_outside_the_namespace(
    engine: Engine, emulator: EmulatorServer, world: dict[str, Any]
) -> None:
    publish(engine, "dainese")
    orphan = transpile_for("incident-postmortem", "dainese-legacy", engine)

    async def prime() -> None:
        client, _ = api_client(emulator)
        async with client:
            await client.create_skill(DAINESE_ORG, orphan)

    asyncio.run(prime())
    emulator.state.bulk_add_skills(DAINESE_ORG, ["someone-elses-skill", "claresia-unowned"])
    plan_run = asyncio.run(reconcile(engine, None, check_remote=True, dry_run=True))
    deletes = [i.name for i in plan_run.plan.items() if i.op.value == "delete"]
    assert deletes == ["claresia-dainese-legacy-incident-postmortem"]
    outcome = publish(engine, force=True)
    assert outcome.status == "succeeded", outcome.errors
    remote = {s.name for s in emulator.state.org(DAINESE_ORG).skills.values()}
    assert "claresia-dainese-legacy-incident-postmortem" not in remote
    assert {"someone-elses-skill", "claresia-unowned"} <= remote


def transpile_for(skill_id: str, tenant: str, engine: Engine) -> dict[str, Any]:
    from claresia_sync.ir import SkillIR

    with Session(engine) as s:
        row = s.get(CatalogSkill, skill_id)
        assert row is not None
        return transpile(SkillIR.model_validate(row.ir), tenant).payload()


def test_a_plain_insert_is_a_job_and_workers_do_not_share_one(
    engine: Engine, emulator: EmulatorServer, world: dict[str, Any]
) -> None:
    with engine.begin() as conn:
        first = conn.execute(text("INSERT INTO publish_job DEFAULT VALUES RETURNING id")).scalar()
        second = conn.execute(text("INSERT INTO publish_job DEFAULT VALUES RETURNING id")).scalar()
    a, b = claim(engine, "a"), claim(engine, "b")
    assert a is not None and b is not None and {a.id, b.id} == {first, second}
    assert claim(engine, "c") is None
    assert asyncio.run(run_job(engine, a)).status == "succeeded"
    with Session(engine) as s:
        s.execute(text("INSERT INTO publish_job DEFAULT VALUES"))
        s.commit()
    outcome = asyncio.run(run_next_job(engine, worker="daemon"))
    assert outcome is not None and outcome.status == "succeeded"
    assert outcome.stats["unchanged"] == 25  # ferretti: 5 plugins; vespucci: 2 skills
    assert asyncio.run(run_next_job(engine)) is None


def test_a_workspace_the_key_may_not_use_fails_only_those_skills(
    engine: Engine, emulator: EmulatorServer, world: dict[str, Any], monkeypatch: Any
) -> None:
    # This key's principal is a member of the engineering workspace only: the pre-flight
    # fails the other skills before any write (issue 13 item 10), so no 403 and nothing half
    # published.
    monkeypatch.setenv("CLARESIA_DAINESE_ADMIN_KEY", DAINESE_ENGONLY_KEY)
    outcome = publish(engine, "dainese")
    assert outcome.status == "partial"
    assert outcome.stats["created"] == 5 and outcome.stats["failed"] == 8
    assert all("wrkspc_dainese_" in e["error"] for e in outcome.errors)
    assert {e["tenant"] for e in outcome.errors} == {"dainese", "dainese-corp"}
    assert visible(emulator, "user_dainese_ana") == names("dainese-eng", ENG)
    assert visible(emulator, "user_dainese_luca") == set()
    assert emulator.stats.count(status=403) == 0
    assert len(emulator.state.org(DAINESE_ORG).skills) == 5

    # With the right key the next run finishes the job: no twins, every ACL set.
    monkeypatch.setenv("CLARESIA_DAINESE_ADMIN_KEY", DAINESE_KEY)
    again = publish(engine, "dainese")
    assert again.status == "succeeded", again.errors
    assert again.stats["unchanged"] == 5 and again.stats["created"] == 8
    assert len(emulator.state.org(DAINESE_ORG).skills) == 13
    assert visible(emulator, "user_dainese_luca") == names("dainese-corp", CORP)


def test_a_skill_deleted_behind_our_back_is_recreated_when_it_changes(
    engine: Engine, emulator: EmulatorServer, world: dict[str, Any]
) -> None:
    publish(engine, "acme")
    org = emulator.state.org("org_acme")
    name = "claresia-acme-okr-drafting"
    old_id = org.names[name]
    emulator.state.delete_skill("org_acme", old_id)
    with Session(engine) as s:  # a new catalog version: the plan says "new version"
        row = s.get(CatalogSkill, "okr-drafting")
        assert row is not None
        row.ir = {**row.ir, "version": "9.9.9"}
        row.ir_hash = "sha256:" + "9" * 64
        s.flush()
        cut_release(s)
        s.commit()
    outcome = publish(engine, "acme")
    assert outcome.status == "succeeded", outcome.errors
    assert outcome.stats["created"] == 1  # the 404 on the new version fell back to create
    new_id = org.names[name]
    assert new_id != old_id
    assert name in visible(emulator, "user_acme_bob", "org_acme")
    with Session(engine) as s:
        pub = s.scalar(select(Publication).where(Publication.published_name == name))
    assert pub is not None and pub.remote_skill_id == new_id and pub.status == "published"
