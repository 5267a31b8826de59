"""The operator docs held to the code (issue 13): every CLI flag, metric, exit code, log field and
scheduled job that README.md or docs/*.md name exists and behaves as written.

The docs are scanned, not copied: a flag or metric added to the docs without the code (or renamed
in the code without the docs) fails here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
import typer.main

from claresia_sync.cli import _register, app
from claresia_sync.emulator import EmulatorServer
from claresia_sync.errors import ExitCode
from tests.cli import clean_env, run_cli
from tests.fixtures.daemon import DaemonProcess, wait_until
from tests.fixtures.emulator import DAINESE_KEY, DAINESE_ORG

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# `claresia_` words in the docs that are not metrics: the package, the analyst role, the NOTIFY
# channel and the queue table of the same name.
NOT_METRICS = {"claresia_sync", "claresia_analyst", "claresia_publish_job", "claresia_"}
# Flags of other programs that deployment.md shows on their own (docker build, kubectl).
FOREIGN_FLAGS = {"--build-arg", "--from-literal"}


def _doc_text() -> Iterator[tuple[Path, str]]:
    for path in DOCS:
        yield path, path.read_text(encoding="utf-8")


def _code_lines() -> Iterator[tuple[Path, str]]:
    """Lines of code blocks and inline code spans: where the docs show what to type."""
    for path, text in _doc_text():
        in_block = False
        for line in text.splitlines():
            if line.lstrip().startswith("```"):
                in_block = not in_block
                continue
            if in_block:
                yield path, line.split(" #", 1)[0]
            else:
                yield from ((path, span) for span in re.findall(r"`([^`]+)`", line))


# Typer may bring its own copy of click: commands are duck-typed (a group has `commands`).
Command = Any


def _root_command() -> Command:
    _register()
    return typer.main.get_command(app)


def _resolve(root: Command, words: list[str]) -> tuple[Command, list[str]]:
    """The deepest subcommand `words` name, and the command path."""
    command = root
    path: list[str] = []
    for word in words:
        if word not in getattr(command, "commands", {}):
            break
        command = command.commands[word]
        path.append(word)
    return command, path


def _flags(command: Command) -> set[str]:
    flags = {"--help", "-h"}
    for param in command.params:
        flags.update(o for o in param.opts + param.secondary_opts if o.startswith("-"))
    return flags


def _documented_invocations() -> list[tuple[str, list[str], list[str]]]:
    """(where, words after `claresia-sync`, flags) for every documented command line."""
    found = []
    for path, line in _code_lines():
        for match in re.finditer(r"claresia-sync((?:\s+[^\s|;&`()<>]+)+)", line):
            words = match.group(1).split()
            flags = [w.split("=", 1)[0] for w in words if re.fullmatch(r"--?[a-z][\w-]*(=.*)?", w)]
            # A flag shown as an alternative ("[--dry-run]", "--all | --tenant T") is still a
            # flag of this command: strip the brackets.
            flags += [f for f in re.findall(r"\[(--[a-z][\w-]*)", match.group(1)) if f not in flags]
            found.append((f"{path.name}: {line.strip()}", words, flags))
    return found


def test_every_documented_command_and_flag_exists() -> None:
    root = _root_command()
    invocations = _documented_invocations()
    assert len(invocations) > 30  # the scan reads the docs at all
    problems = []
    for where, words, flags in invocations:
        if not words or (words[0].startswith("-") and words[0] not in _flags(root)):
            continue
        command, path = _resolve(root, words)
        if not path and not words[0].startswith("-"):
            if re.fullmatch(r"[a-z][a-z-]*", words[0]):  # a word that looks like a command
                problems.append(f"{where}: no command {words[0]!r}")
            continue
        missing = [f for f in flags if f not in _flags(command) | _flags(root)]
        if missing:
            problems.append(f"{where}: `claresia-sync {' '.join(path)}` has no {missing}")
    assert not problems, "\n".join(problems)


def _all_flags(command: Command) -> set[str]:
    flags = _flags(command)
    for sub in getattr(command, "commands", {}).values():
        flags |= _all_flags(sub)
    return flags


def test_every_flag_named_on_its_own_exists() -> None:
    """Prose such as "every `--poll-interval` seconds" names a flag without its command."""
    known = _all_flags(_root_command())
    named = {
        (path.name, span.split()[0].split("=")[0])
        for path, span in _code_lines()
        if re.fullmatch(r"--[a-z][\w-]*(?:[ =]\S+)?", span.strip())
    }
    assert len(named) > 5
    missing = sorted(
        f"{where}: {flag}" for where, flag in named if flag not in known | FOREIGN_FLAGS
    )
    assert not missing, missing


def _documented_metrics() -> set[str]:
    names = set()
    for _, text in _doc_text():
        names.update(re.findall(r"\bclaresia_[a-z0-9_]+", text))
    names -= NOT_METRICS
    # A histogram's series (`_bucket`, `_sum`, `_count`) belong to the histogram.
    return {re.sub(r"_(bucket|sum|count)$", "", n) for n in names}


@pytest.fixture
def metrics_page(start_daemon: Callable[..., DaemonProcess]) -> str:
    daemon = start_daemon()
    return httpx2.get(f"http://127.0.0.1:{daemon.port}/metrics", timeout=5).text


def test_every_documented_metric_is_exported(metrics_page: str) -> None:
    documented = _documented_metrics()
    assert "claresia_api_calls_total" in documented  # the scan reads the docs at all
    exported = set(re.findall(r"^# TYPE (\w+) ", metrics_page, re.M))
    # prometheus_client names a counter `x` in TYPE and its samples `x_total`.
    exported |= {f"{name}_total" for name in exported}
    assert documented <= exported, f"documented but not exported: {documented - exported}"


def test_documented_exit_codes_are_the_codes_of_the_code() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Exit codes", 1)
    assert len(section) == 2, "README has no 'Exit codes' section"
    rows = re.findall(r"^\| (\d) \| (.+?) \|$", section[1].split("\n## ", 1)[0], re.M)
    assert {int(code) for code, _ in rows} == {int(code) for code in ExitCode}


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("no-such-command",), ExitCode.USAGE),
        (("catalog", "validate", "--no-such-flag"), ExitCode.USAGE),
        (("catalog", "validate", "skills_ir/catalog"), ExitCode.OK),
        (("catalog", "validate", "tests/ir_corpus/mixed"), ExitCode.ERROR),
        (("--version",), ExitCode.OK),
        (("transpile", "-h"), ExitCode.OK),
    ],
)
def test_exit_codes_behave_as_documented(args: tuple[str, ...], code: ExitCode) -> None:
    done = run_cli(*args, timeout=60)
    assert done.returncode == code, done.stdout + done.stderr
    if code in (ExitCode.ERROR, ExitCode.USAGE):
        # The reason is one line (validate lists each file's problems before it); no traceback.
        assert done.stderr.strip().splitlines()[-1].startswith("claresia-sync: "), done.stderr
        assert "Traceback" not in done.stderr


def test_work_with_failures_exits_3(emulator: EmulatorServer) -> None:
    """A connection test whose organisation fails a check (zero retention off) ran, but failed."""
    httpx2.post(
        f"{emulator.base_url}/_emulator/orgs/{DAINESE_ORG}", json={"zero_data_retention": False}
    ).raise_for_status()
    done = run_cli(
        "connection",
        "test",
        "--base-url",
        emulator.base_url,
        "--key-ref",
        "env:CLARESIA_DAINESE_ADMIN_KEY",
        env=clean_env(CLARESIA_DAINESE_ADMIN_KEY=DAINESE_KEY),
        timeout=60,
    )
    assert done.returncode == ExitCode.FAILURES, done.stdout + done.stderr


def test_scheduled_work_is_what_the_docs_list(start_daemon: Callable[..., DaemonProcess]) -> None:
    """docs/deployment.md "Scheduled work" names each step the daemon schedules, and the log
    fields it promises are JSON keys of the daemon's lines."""
    guide = (ROOT / "docs/deployment.md").read_text(encoding="utf-8")
    table = guide.split("## Scheduled work", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([a-z-]+)` \|", table, re.M))
    # acme's key unset: its polls fail, and those lines are about one organisation (org_id).
    daemon = start_daemon(env={"CLARESIA_ACME_ADMIN_KEY": ""})
    line = wait_for_log(daemon, lambda e: str(e.get("event", "")).startswith("scheduled: "))
    scheduled = set(re.findall(r"([a-z-]+) every [\d.e+]+s", str(line["event"])))
    assert {"poll", "drift", "retention"} <= documented
    assert documented == scheduled

    promised = re.search(r"fields such as\s+(.+?)\)", guide, re.S)
    assert promised is not None
    fields = re.findall(r"`(\w+)`", promised.group(1))
    assert fields == ["org_id", "tenant", "job_id"]
    job = run_cli("publish", "--tenant", "dainese", env=daemon.env)
    assert job.returncode == 0, job.stderr
    for field in fields:
        wait_for_log(daemon, lambda e, f=field: f in e)  # type: ignore[misc]


def wait_for_log(
    daemon: DaemonProcess, match: Callable[[dict[str, object]], bool]
) -> dict[str, object]:
    found: list[dict[str, object]] = []

    def check() -> bool:
        found[:] = [e for e in daemon.logs() if match(e)]
        return bool(found)

    wait_until(check, 30, "a matching daemon log line")
    return found[0]
