"""`claresia-sync rollout start | status | promote | halt | rollback`: a release moved to the
tenants in waves (docs/releases.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import Session

from claresia_sync.cli.output import console, print_json
from claresia_sync.config import load_settings
from claresia_sync.db import open_database
from claresia_sync.db.models import Rollout
from claresia_sync.errors import ExitCode
from claresia_sync.release_store import operator, require_release
from claresia_sync.rollout import state
from claresia_sync.rollout.plan import DEFAULT_PLAN, load_plan
from claresia_sync.rollout.view import describe

app = typer.Typer(
    help="Move tenants to a release in waves, watch the guardrails, halt, roll back.",
    no_args_is_help=True,
)

AsJson = Annotated[bool, typer.Option("--json", help="JSON on stdout.")]
By = Annotated[str | None, typer.Option("--by", help="Who acts (default: the OS user).")]


@app.command("start")
def start_cmd(
    number: Annotated[int, typer.Argument(help="The release to roll out.", min=1)],
    plan: Annotated[
        Path | None,
        typer.Option("--plan", help="Waves (YAML); default: canary, half, rest."),
    ] = None,
    by: By = None,
    as_json: AsJson = False,
) -> None:
    """Start rolling release N out: its first wave's tenants are pinned to it and published now;
    the daemon moves the next waves as guardrails pass."""
    chosen = DEFAULT_PLAN if plan is None else load_plan(plan)
    with open_database(load_settings()) as engine, Session(engine) as session:
        rollout = state.start(
            session,
            number,
            chosen,
            source="default" if plan is None else str(plan),
            by=by or operator(),
        )
        session.commit()
        view = describe(session, rollout.id)
    _show(view, as_json)


@app.command("status")
def status_cmd(
    number: Annotated[
        int | None,
        typer.Argument(help="A release: its newest rollout (none: the newest rollout).", min=1),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """A rollout's waves, tenants, publish jobs, guardrail readings and next step. Exits 3 when
    it is halted."""
    with open_database(load_settings()) as engine, Session(engine) as session:
        rollout_id = None
        if number is not None:
            require_release(session, number)
            rollout_id = session.scalar(
                select(Rollout.id).where(Rollout.release == number).order_by(Rollout.id.desc())
            )
            if rollout_id is None:
                raise state.RolloutStateError(
                    f"release {number} has not been rolled out: `rollout start {number}`"
                )
        view = describe(session, rollout_id)
    _show(view, as_json)
    if view["status"] == "halted":
        raise typer.Exit(ExitCode.FAILURES)


@app.command("promote")
def promote_cmd(by: By = None, as_json: AsJson = False) -> None:
    """Pass the current wave now and start the next (a halted rollout runs again)."""
    _act(lambda s, r, who: state.promote(s, r, who), by, as_json)


@app.command("halt")
def halt_cmd(
    reason: Annotated[str | None, typer.Option("--reason", help="Why (kept with it).")] = None,
    by: By = None,
    as_json: AsJson = False,
) -> None:
    """Stop advancing the rollout: the tenants moved stay where they are."""
    _act(
        lambda s, r, who: state.halt(s, r, f"halted by {who}" + (f": {reason}" if reason else "")),
        by,
        as_json,
    )


@app.command("rollback")
def rollback_cmd(by: By = None, as_json: AsJson = False) -> None:
    """Every tenant the rollout moved back on its previous release, republished on every
    target (the daemon runs the queued jobs)."""
    _act(lambda s, r, who: state.rollback(s, r, who), by, as_json)


def _act(verb: Any, by: str | None, as_json: bool) -> None:
    with open_database(load_settings()) as engine, Session(engine) as session:
        rollout = state.require_rollout(session, None, lock=True)
        verb(session, rollout, by or operator())
        session.commit()
        view = describe(session, rollout.id)
    _show(view, as_json)


def _show(view: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(view)
        return
    out = console()
    out.print(
        f"rollout {view['id']} of release {view['release']}: {view['status']} "
        f"(started by {view['created_by']}, plan {view['plan_source']})",
        markup=False,
    )
    table = Table("wave", "status", "soak", "tenants", "guardrails")
    for w in view["waves"]:
        tenants = ", ".join(
            f"{t['tenant']} ({t['rollback_job_status'] or t['job_status'] or 'waiting'})"
            for t in w["tenants"]
        )
        readings = w["readings"] or {}
        table.add_row(
            f"{w['number']} {w['name']}",
            w["status"],
            f"{w['soak_s']:g}s",
            tenants or "-",
            readings.get("verdict", "-"),
        )
    out.print(table)
    out.print(f"next: {view['next_step']}", markup=False)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="rollout")
