"""Replaying the quarantine: events of a workspace mapped after they were polled become rows;
malformed ones stay with their reason; nothing is stored twice."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from claresia_sync.config import Settings
from claresia_sync.db.models import Tenant, WorkspaceMapping
from claresia_sync.emulator import EmulatorServer
from claresia_sync.telemetry.quarantine import replay_quarantine
from tests.cli import clean_env, run_cli
from tests.fixtures.emulator import DAINESE_KEY, DAINESE_ORG
from tests.integration.test_telemetry_poller import ENG_SKILL, poll, scalar, world

__all__ = ["world"]  # the fixture, shared with the poller tests

MYSTERY = "wrkspc_mystery"


def quarantine_mystery_events(world: EmulatorServer, engine: Engine, count: int) -> list[str]:
    """`count` events in an unmapped workspace and one with a broken timestamp, polled."""
    state = world.state
    state.generate_invocations(DAINESE_ORG, 1, skill=ENG_SKILL, seed=3)
    template = json.loads(state.audit_page(DAINESE_ORG, 1, None, None))["data"][0]
    template = {k: v for k, v in template.items() if k not in ("id", "created_at")}
    ids = state.append_events(DAINESE_ORG, [{**template, "workspace_id": MYSTERY}] * count)
    state.append_events(DAINESE_ORG, [{**template, "created_at": "yesterday"}])
    (result,) = poll(engine, tenant="dainese")
    assert (result.inserted, result.quarantined) == (1, count + 1)
    return ids


def map_mystery(engine: Engine, tenant: str = "dainese-corp") -> None:
    with Session(engine) as s:
        owner = s.query(Tenant).filter_by(slug=tenant).one()
        s.add(WorkspaceMapping(org_id=DAINESE_ORG, workspace_id=MYSTERY, tenant_id=owner.id))
        s.commit()


def test_events_of_a_newly_mapped_workspace_become_rows_once(
    engine: Engine, world: EmulatorServer
) -> None:
    ids = quarantine_mystery_events(world, engine, 3)
    (before,) = replay_quarantine(engine)
    assert (before.attributed, sum(before.still.values())) == (0, 4)
    assert any("unknown workspace 'wrkspc_mystery'" in r for r in before.still)

    map_mystery(engine)
    (dry,) = replay_quarantine(engine, dry_run=True)
    assert dry.attributed == 3 and dry.inserted == 0
    assert scalar(engine, "SELECT count(*) FROM telemetry_quarantine") == 4

    (done,) = replay_quarantine(engine)
    assert (done.examined, done.attributed, done.inserted) == (4, 3, 3)
    assert list(done.still.values()) == [1] and "created_at" in next(iter(done.still))
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT event_id, tenant_slug, workspace_id FROM telemetry_event ORDER BY 1")
        ).all()
        left = conn.execute(text("SELECT reason FROM telemetry_quarantine")).scalars().all()
    mystery = [r for r in rows if r.workspace_id == MYSTERY]
    assert sorted(r.event_id for r in mystery) == sorted(ids)
    assert {r.tenant_slug for r in mystery} == {"dainese-corp"}
    assert len(left) == 1 and "created_at" in left[0]

    # Again: nothing more; a redelivery of the replayed events by the poller adds nothing.
    (again,) = replay_quarantine(engine)
    assert (again.attributed, again.inserted) == (0, 0)
    world.set_faults(duplicate_rate=1.0, duplicate_count=10)
    world.state.generate_invocations(DAINESE_ORG, 1, skill=ENG_SKILL, seed=9)
    (polled,) = poll(engine, tenant="dainese")
    assert polled.inserted == 1
    assert scalar(engine, "SELECT count(*) FROM telemetry_event") == len(rows) + 1
    assert scalar(engine, "SELECT count(*) FROM telemetry_event_id") == len(rows) + 1


def test_an_entry_already_stored_leaves_the_quarantine_without_a_twin(
    engine: Engine, world: EmulatorServer
) -> None:
    (event_id,) = quarantine_mystery_events(world, engine, 1)
    map_mystery(engine)
    # The poller re-reads the event (say, a checkpoint restored from a backup) before a replay.
    with engine.begin() as conn:
        conn.execute(text("UPDATE audit_checkpoint SET after_id = NULL"))
    (result,) = poll(engine, tenant="dainese")
    assert result.inserted == 1  # the mystery event, now attributable
    (replayed,) = replay_quarantine(engine)
    assert (replayed.attributed, replayed.inserted) == (1, 0)
    assert scalar(engine, "SELECT count(*) FROM telemetry_event WHERE event_id = :e", e=event_id)
    assert scalar(engine, "SELECT count(*) FROM telemetry_quarantine") == 1  # the malformed one


def test_tenants_apply_attributes_quarantined_events_of_a_workspace_it_maps(
    engine: Engine, world: EmulatorServer, db_settings: Settings, tmp_path: Path
) -> None:
    quarantine_mystery_events(world, engine, 2)
    dry = run_cli("telemetry", "replay-quarantine", "--dry-run", env=clean_env(db_settings))
    assert dry.returncode == 0, dry.stderr
    assert f"{DAINESE_ORG}: 3 examined, 0 would be attributed" in dry.stdout
    assert "3 still quarantined: 2 unknown workspace 'wrkspc_mystery'" in dry.stdout

    tenants = tmp_path / "tenants.yaml"
    tenants.write_text(TENANTS.format(base_url=world.base_url, mystery=MYSTERY))
    env = clean_env(db_settings, CLARESIA_DAINESE_ADMIN_KEY=DAINESE_KEY)
    applied = run_cli("tenants", "apply", str(tenants), env=env)
    assert applied.returncode == 0, applied.stderr
    assert f"quarantine of {DAINESE_ORG}: 2 event(s) now attributed" in applied.stdout
    assert scalar(engine, "SELECT count(*) FROM telemetry_event WHERE workspace_id = :w", w=MYSTERY)
    assert scalar(engine, "SELECT count(*) FROM telemetry_quarantine") == 1

    unchanged = run_cli("tenants", "apply", str(tenants), env=env)
    assert "no changes" in unchanged.stdout and "now attributed" not in unchanged.stdout


TENANTS = """\
version: 1
tenants:
  - slug: dainese
    display_name: Dainese S.p.A.
    connection:
      org_id: org_dainese
      admin_key: env:CLARESIA_DAINESE_ADMIN_KEY
      base_url: {base_url}
    workspaces: [{{id: wrkspc_dainese_sales, name: dainese-sales}}]
    archetypes:
      - {{slug: account-exec, rbac_group: rbac_group_dainese_sales, grants: [meeting-summary]}}
    sub_tenants:
      - slug: dainese-eng
        display_name: Dainese Engineering
        workspaces: [{{id: wrkspc_dainese_eng, name: dainese-engineering}}]
        archetypes:
          - slug: engineer
            rbac_group: rbac_group_dainese_engineers
            grants: [incident-postmortem]
      - slug: dainese-corp
        display_name: Dainese Corporate
        workspaces:
          - {{id: wrkspc_dainese_corp, name: dainese-corporate}}
          - {{id: {mystery}, name: mystery}}
        archetypes:
          - {{slug: product-manager, rbac_group: rbac_group_dainese_product, grants: [prd-review]}}
"""


def test_an_entry_still_bad_gets_the_current_reason(engine: Engine, world: EmulatorServer) -> None:
    state = world.state
    state.generate_invocations(DAINESE_ORG, 1, skill=ENG_SKILL, seed=3)
    template = json.loads(state.audit_page(DAINESE_ORG, 1, None, None))["data"][0]
    template = {k: v for k, v in template.items() if k not in ("id", "created_at")}
    unknown = {"id": "skill_gone", "name": "claresia-nobody-ghost-skill"}
    (event_id,) = state.append_events(
        DAINESE_ORG, [{**template, "workspace_id": MYSTERY, "skill": unknown}]
    )
    poll(engine, tenant="dainese")
    reason = "SELECT reason FROM telemetry_quarantine WHERE event_id = :e"
    assert "unknown workspace" in scalar(engine, reason, e=event_id)
    map_mystery(engine)
    (result,) = replay_quarantine(engine)
    assert result.attributed == 0
    assert "matches no publication" in scalar(engine, reason, e=event_id)
