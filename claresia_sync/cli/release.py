"""`claresia-sync release list | show | diff | current | pin | unpin`: catalog releases
(docs/releases.md)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy.orm import Session

from claresia_sync import release_store
from claresia_sync.cli.output import console, print_json
from claresia_sync.config import load_settings
from claresia_sync.db import open_database
from claresia_sync.publish.release_diff import diff_for_tenant
from claresia_sync.rollout import state as rollout_state

app = typer.Typer(
    help="Catalog releases: list, show, diff, name the current one, pin a tenant.",
    no_args_is_help=True,
)

Number = Annotated[int, typer.Argument(help="A release number (see `release list`).", min=1)]
AsJson = Annotated[bool, typer.Option("--json", help="JSON on stdout.")]
TenantOpt = Annotated[str, typer.Option("--tenant", help="The tenant (slug).")]


def _when(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


@app.command("list")
def list_cmd(as_json: AsJson = False) -> None:
    """Every release: number, when, who, note, skills, which is current, tenants pinned to it."""
    with open_database(load_settings()) as engine, Session(engine) as session:
        views = release_store.list_releases(session)
    if as_json:
        print_json([v.as_json() for v in views])
        return
    table = Table("release", "current", "created", "by", "skills", "pinned tenants", "note")
    for v in views:
        table.add_row(
            str(v.number),
            "yes" if v.current else "",
            _when(v.created_at),
            v.created_by,
            str(v.skills),
            ", ".join(v.tenants),
            v.note or "",
        )
    console().print(table)


@app.command("show")
def show_cmd(number: Number, as_json: AsJson = False) -> None:
    """One release: who made it, when, why, and each skill's IR hash."""
    with open_database(load_settings()) as engine, Session(engine) as session:
        view, skills = release_store.show_release(session, number)
    if as_json:
        print_json(
            {
                **view.as_json(),
                "skills": [
                    {"skill_id": s, "ir_hash": h, "deprecated": d}
                    for s, (h, d) in sorted(skills.items())
                ],
            }
        )
        return
    out = console()
    out.print(f"release {view.number}{' (current)' if view.current else ''}")
    out.print(f"  created: {_when(view.created_at)} by {view.created_by}")
    out.print(f"  note: {view.note or '-'}")
    out.print(f"  pinned tenants: {', '.join(view.tenants) or '-'}")
    table = Table("skill", "IR hash", "deprecated")
    for skill_id, (ir_hash, deprecated) in sorted(skills.items()):
        table.add_row(skill_id, ir_hash, "yes" if deprecated else "")
    out.print(table)


@app.command("diff")
def diff_cmd(
    a: Annotated[int, typer.Argument(help="The older release.", min=1)],
    b: Annotated[int, typer.Argument(help="The newer release.", min=1)],
    tenant: Annotated[
        str | None,
        typer.Option("--tenant", help="Show each changed skill's SKILL.md diff as it gets it."),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Per skill, what release B changes against A: added, changed, removed."""
    with open_database(load_settings()) as engine, Session(engine) as session:
        if tenant is None:
            changes = release_store.diff_releases(session, a, b)
        else:
            changes = diff_for_tenant(session, a, b, tenant)
    if as_json:
        print_json([c.as_json() for c in changes])
        return
    out = console()
    if not changes:
        out.print(f"releases {a} and {b} have the same skills")
        return
    table = Table("skill", "change", f"IR hash in {a}", f"IR hash in {b}")
    for c in changes:
        change = c.change + (" (deprecated)" if c.deprecated else "")
        table.add_row(c.skill_id, change, c.old_hash or "-", c.new_hash or "-")
    out.print(table)
    for c in changes:
        if c.text_diff is not None:
            # markup off: a SKILL.md holds [brackets] rich would read as styles
            out.print(c.text_diff or f"{c.skill_id}: SKILL.md unchanged", markup=False)


@app.command("current")
def current_cmd(
    number: Annotated[
        int | None, typer.Argument(help="Make this release current (none: print it).", min=1)
    ] = None,
) -> None:
    """Print the current release, or name another: tenants not pinned publish it at their next
    publish (`claresia-sync publish` or the daemon's next job). The tenants a completed rollout
    pinned to it follow the current release again."""
    following: list[str] = []
    with open_database(load_settings()) as engine, Session(engine) as session:
        if number is not None:
            release_store.set_current(session, number)
            following = rollout_state.follow_current(session, number)
            session.commit()
        current = release_store.current_release(session)
    print(f"current release: {current if current is not None else 'none'}")
    if following:
        slugs = ", ".join(following)
        print(f"pinned to it by its rollout, now following the current release: {slugs}")


@app.command("pin")
def pin_cmd(number: Number, tenant: TenantOpt) -> None:
    """Put a tenant (and its sub-tenants not pinned themselves) on release N."""
    with open_database(load_settings()) as engine, Session(engine) as session:
        release_store.pin_tenant(session, tenant, number)
        session.commit()
    print(
        f"tenant {tenant} is on release {number} "
        f"(publish it: `claresia-sync publish --tenant {tenant}`)"
    )


@app.command("unpin")
def unpin_cmd(tenant: TenantOpt) -> None:
    """Put a tenant back on the current release."""
    with open_database(load_settings()) as engine, Session(engine) as session:
        release_store.pin_tenant(session, tenant, None)
        session.commit()
    print(f"tenant {tenant} follows the current release")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="release")
