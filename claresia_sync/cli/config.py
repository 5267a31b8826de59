"""`claresia-sync config show`: every setting, its value, where it came from (secrets masked)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from claresia_sync.cli.output import console, print_json
from claresia_sync.config import (
    Settings,
    env_name,
    field_info,
    flag_name,
    has_flag,
    is_secret,
    load_settings,
)

config_app = typer.Typer(help="The settings of this process.", no_args_is_help=True)


def masked(value: Any) -> Any:
    """A secret for display: a URL keeps all but its password, anything else is hidden."""
    if value is None:
        return None
    try:
        url = make_url(str(value))
    except ArgumentError:
        return "****"
    return url.render_as_string(hide_password=True) if url.password else "****"


def rows(settings: Settings) -> list[dict[str, Any]]:
    out = []
    for name in Settings.model_fields:
        value = getattr(settings, name)
        out.append(
            {
                "name": name,
                "env": env_name(name),
                "flag": f"run {flag_name(name)}" if has_flag(name) else None,
                "value": masked(value) if is_secret(name) else value,
                "source": settings.source_of(name),
                "meaning": field_info(name).description,
            }
        )
    return out


@config_app.command("show")
def show_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")] = False,
) -> None:
    """Every setting from the environment and the defaults (`run` adds its flags over them)."""
    settings = rows(load_settings())
    if as_json:
        print_json({"settings": settings})
        return
    table = Table("variable", "flag", "value", "from", "meaning")
    for s in settings:
        value = "(unset)" if s["value"] is None else str(s["value"])
        table.add_row(s["env"], s["flag"] or "", value, s["source"], s["meaning"])
    console().print(table, markup=False)


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")
