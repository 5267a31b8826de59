"""`claresia-sync emulator`: the Anthropic organisation API emulator in the foreground."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

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


def register(app: typer.Typer) -> None:
    app.command("emulator")(emulator)
