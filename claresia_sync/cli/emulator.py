"""`claresia-sync emulator`: the Anthropic organisation API emulator in the foreground."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import httpx2
import typer

from claresia_sync.errors import UserError


def emulator(
    port: Annotated[int, typer.Option(help="TCP port (0: any free port).")] = 8765,
    seed: Annotated[
        Path | None,
        typer.Option(help="Seed file (YAML/JSON). Default: deploy/emulator.seed.yaml."),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
) -> None:
    """Serve an emulated Anthropic organisation API until Ctrl-C / SIGTERM."""
    from claresia_sync.emulator import DEMO_SEED, EmulatorServer, SeedError

    seed_path = seed or DEMO_SEED
    if not seed_path.is_file():
        raise UserError(f"emulator seed {seed_path} not found: pass --seed FILE")
    try:
        server = EmulatorServer(seed_path, host=host, port=port)
    except SeedError as exc:
        raise UserError(str(exc)) from None
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    orgs = ", ".join(server.state.orgs)
    print(f"emulator listening on {server.base_url} (seed {seed_path}; organisations {orgs})")
    print("control routes under /_emulator/ (no key); Ctrl-C stops", flush=True)
    server.serve_forever()


def emulator_claude_code(
    skill: Annotated[list[str], typer.Option(help="Published skill name to activate (repeat).")],
    endpoint: Annotated[
        str, typer.Option(help="The OTLP/HTTP logs endpoint (the daemon's receiver).")
    ] = "http://127.0.0.1:4318/v1/logs",
    token_ref: Annotated[
        str, typer.Option(help="The tenant's OTLP bearer token, as env:NAME or file:PATH.")
    ] = "env:CLARESIA_OTLP_TOKEN",
    prompts: Annotated[int, typer.Option(help="Prompts to simulate (one activation each).")] = 10,
    protocol: Annotated[str, typer.Option(help="http/protobuf or http/json.")] = "http/protobuf",
    gzip: Annotated[bool, typer.Option(help="Compress the body with gzip.")] = True,
    interval: Annotated[
        float,
        typer.Option(
            help="Seconds between two exports, as OTEL_LOGS_EXPORT_INTERVAL (5 s); the "
            "prompts' usage follows one or two exports after their activation."
        ),
    ] = 5.0,
    bare: Annotated[
        bool,
        typer.Option(
            "--bare", help="Name the skill bare (org-skills), not as a plugin's <name>:<name>."
        ),
    ] = False,
) -> None:
    """Export OTLP logs the way Claude Code does: batches on an interval, a prompt's
    skill_activated and, in later batches, its api_request records."""
    from claresia_sync.emulator.claude_code import Prompt, export
    from claresia_sync.secrets import KeyReferenceError, resolve_token

    if protocol not in ("http/protobuf", "http/json"):
        raise UserError(f"--protocol {protocol}: use http/protobuf or http/json")
    if prompts < 1 or not 0 < interval <= 3600:
        raise UserError("--prompts must be at least 1 and --interval in (0, 3600] seconds")
    try:
        token = resolve_token(token_ref)
    except KeyReferenceError as exc:
        raise UserError(f"--token-ref: {exc}") from None
    chosen = [Prompt(skill[i % len(skill)], plugin=not bare) for i in range(prompts)]
    try:
        statuses = export(
            endpoint, token, chosen, protocol=protocol, compress=gzip, interval_s=interval
        )
    except httpx2.HTTPError as exc:
        raise UserError(f"cannot reach {endpoint}: {exc}") from None
    print(
        f"exported {prompts} prompt(s) in {len(statuses)} export(s) to {endpoint}: "
        f"HTTP {', '.join(map(str, statuses))}"
    )
    if any(s != 200 for s in statuses):
        raise UserError("the receiver refused an export (see the status above)", exit_code=3)


def register(app: typer.Typer) -> None:
    app.command("emulator")(emulator)
    app.command("emulator-claude-code")(emulator_claude_code)
