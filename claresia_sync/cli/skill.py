"""`claresia-sync skill disable | enable | list-disabled`: the kill switch (docs/releases.md,
"Switch a skill off").

`disable` records the skill as disabled and runs the kill-switch job in this process (with
`--no-wait`, queues it for the daemon): it runs ahead of every queued job, and a running job on
the same tenants gives way to it. `enable` runs a normal publish of the scope. Both are recorded
in the operator action log (`center_action`, actor `cli:<who>`), refused or not.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from claresia_sync.center import actions
from claresia_sync.cli.output import console, print_json
from claresia_sync.cli.publish import Concurrency, cli_worker, report_outcome, run_here
from claresia_sync.config import Settings, load_settings
from claresia_sync.db import open_database
from claresia_sync.errors import UserError, one_line
from claresia_sync.publish import jobs, kill_switch
from claresia_sync.publish.applier import DEFAULT_CONCURRENCY
from claresia_sync.release_store import operator

app = typer.Typer(
    help="The kill switch: take a skill away from every user at once, give it back, list.",
    no_args_is_help=True,
)

SkillArg = Annotated[str, typer.Argument(help="The catalog skill id (see `catalog list`).")]
TenantOpt = Annotated[
    str | None,
    typer.Option("--tenant", help="One tenant (with its sub-tenants); default: every tenant."),
]
ByOpt = Annotated[
    str | None, typer.Option("--by", help="Who acts, for the audit (default: the OS user).")
]
NoWait = Annotated[
    bool,
    typer.Option("--no-wait", help="Queue the job for the daemon instead of running it here."),
]


def _audited(
    engine: Engine,
    by: str,
    action: actions.Action,
    act: Callable[[Session], kill_switch.Switched],
) -> kill_switch.Switched:
    """Do `act` in one transaction and record it in the action log, refused or not."""
    try:
        with Session(engine) as session, session.begin():
            done = act(session)
    except UserError as exc:
        actions.record_as(engine, f"cli:{by}", "cli", action, "refused", detail=one_line(exc))
        raise
    actions.record_as(engine, f"cli:{by}", "cli", action, "ok", job_id=done.job_id)
    return done


def _run(engine: Engine, job_id: int, no_wait: bool, concurrency: int, settings: Settings) -> None:
    if no_wait:
        return
    report_outcome(job_id, *run_here(engine, jobs.claimed(engine, job_id), concurrency, settings))


@app.command("disable")
def disable_cmd(
    skill: SkillArg,
    reason: Annotated[
        str, typer.Option("--reason", help="Why it is taken away (recorded and shown).")
    ],
    tenant: TenantOpt = None,
    by: ByOpt = None,
    no_wait: NoWait = False,
    concurrency: Concurrency = DEFAULT_CONCURRENCY,
) -> None:
    """Take SKILL away from every user, on every target, at once; it stays away (no publish,
    drift check or rollout puts it back) until `skill enable`."""
    who = by or operator()
    action = actions.Action("skill.disable", skill, {"tenant": tenant, "reason": reason})
    settings = load_settings()
    with open_database(settings) as engine:
        worker = None if no_wait else cli_worker()
        done = _audited(
            engine,
            who,
            action,
            lambda s: kill_switch.disable(
                s, skill, tenant, reason=reason, by=who, claimed_by=worker
            ),
        )
        scope = f"tenant {tenant}" if tenant else "every tenant"
        state = "disabled" if done.changed else "already disabled"
        print(f"skill {skill} {state} for {scope}: kill-switch job {done.job_id}")
        _run(engine, done.job_id, no_wait, concurrency, settings)


@app.command("enable")
def enable_cmd(
    skill: SkillArg,
    tenant: TenantOpt = None,
    by: ByOpt = None,
    no_wait: NoWait = False,
    concurrency: Concurrency = DEFAULT_CONCURRENCY,
) -> None:
    """Give SKILL back (a normal publish of the scope). Without --tenant: everywhere it is
    disabled."""
    who = by or operator()
    action = actions.Action("skill.enable", skill, {"tenant": tenant})
    settings = load_settings()
    with open_database(settings) as engine:
        worker = None if no_wait else cli_worker()
        done = _audited(
            engine,
            who,
            action,
            lambda s: kill_switch.enable(s, skill, tenant, by=who, claimed_by=worker),
        )
        scope = f"tenant {tenant}" if tenant else "every tenant"
        print(f"skill {skill} enabled for {scope}: publish job {done.job_id}")
        _run(engine, done.job_id, no_wait, concurrency, settings)


def _when(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


@app.command("list-disabled")
def list_disabled_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="JSON on stdout.")] = False,
) -> None:
    """The skills disabled now: for which tenant, since when, by whom, why, and the job."""
    with open_database(load_settings()) as engine, Session(engine) as session:
        found = kill_switch.list_disabled(session)
    if as_json:
        print_json([d.as_json() for d in found])
        return
    if not found:
        print("no skill is disabled")
        return
    table = Table("skill", "tenant", "since", "by", "job", "reason")
    for d in found:
        table.add_row(
            d.skill_id,
            d.tenant or "(every tenant)",
            _when(d.disabled_at),
            d.disabled_by,
            str(d.job_id or ""),
            d.reason,
        )
    console().print(table)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="skill")
