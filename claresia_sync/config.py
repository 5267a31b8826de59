"""The settings of one process: one object, read once at start from `CLARESIA_*` environment
variables and (for `run`) command-line flags, validated with one line per bad value.

Every field of `Settings` is a setting: its environment variable is `CLARESIA_` + the field name
in capitals; `run`'s flag, where it has one, is `--` + the name with dashes. Adding a setting is
one line in `Settings`; `config show`, `run --help` and the docs test read it from the field.
pydantic-settings does the reading (prefix, types, empty = unset); this module adds the one-line
errors and the process-wide instance.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import platformdirs
from pydantic import Field, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from claresia_sync.errors import ExitCode, UserError
from claresia_sync.operator_tokens import TokenSpec, parse_tokens
from claresia_sync.telemetry.settings import (
    DEFAULT_HUB_RECORD_URL,
    DEFAULT_RETENTION_DAYS,
    DEFAULT_USAGE_WAIT_HOURS,
    TelemetrySettings,
    link_template_problem,
)
from claresia_sync.telemetry.sources import SourceSettings

APP_NAME = "claresia-sync"
ENV_PREFIX = "CLARESIA_"
DATABASE_URL_ENV = "CLARESIA_DATABASE_URL"
STATE_DIR_ENV = "CLARESIA_STATE_DIR"
OPS_HOST = "0.0.0.0"  # the default address of the ops endpoints and the OTLP receiver


def setting(
    default: Any, help: str, *, flag: bool = False, secret: bool = False, **rules: Any
) -> Any:
    """A field of `Settings`: its default (a callable: computed), what it means, whether `run`
    has a flag for it, whether `config show` masks it, and pydantic's rules (`gt`, `ge`, ...)."""
    extra: dict[str, Any] = {"flag": flag, "secret": secret}
    if isinstance(default, float):
        rules.setdefault("allow_inf_nan", False)
    if callable(default):
        return Field(default_factory=default, description=help, json_schema_extra=extra, **rules)
    return Field(default, description=help, json_schema_extra=extra, **rules)


def _user_data_dir() -> Path:
    return Path(platformdirs.user_data_dir(APP_NAME))


class Settings(BaseSettings):
    """Everything an operator can set; read it with `Settings.load()` (see the module doc)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_ignore_empty=True,  # an empty variable means "not set"
        str_strip_whitespace=True,
        frozen=True,
        extra="forbid",
    )

    # fmt: off
    # where state lives
    database_url: str | None = setting(None, "PostgreSQL URL postgresql+psycopg://user:pw@host/db; unset: an embedded server under the state dir", secret=True)  # noqa: E501
    state_dir: Path = setting(_user_data_dir, "local state: the embedded server's data lives in its pgdata")  # noqa: E501
    # the Anthropic API and the job queue
    api_timeout_s: float = setting(30.0, "seconds one Anthropic API request may take", gt=0)
    job_stale_after_s: float = setting(30.0, "seconds without heartbeat after which a running publish job is requeued", gt=0)  # noqa: E501
    job_keep_days: float = setting(30.0, "finished publish jobs older than this many days are pruned (daily, and by jobs prune)", gt=0)  # noqa: E501
    job_retry_rounds: int = setting(4, "rounds of a publish job at most: skills that failed for a passing reason (429, 5xx, no answer) are retried with backoff", ge=1, le=10)  # noqa: E501
    # telemetry (handed down as telemetry.settings.TelemetrySettings)
    telemetry_retention_days: int = setting(DEFAULT_RETENTION_DAYS, "telemetry older than this many days is dropped", ge=1)  # noqa: E501
    telemetry_store_emails: bool = setting(False, "true keeps the invoking user's email")
    otlp_usage_wait_hours: int = setting(DEFAULT_USAGE_WAIT_HOURS, "hours a Claude Code prompt's usage (api_request) waits for its skill activation; deleted unmatched after that (with the daily retention)", ge=1, le=8760)  # noqa: E501
    hub_record_url: str = setting(DEFAULT_HUB_RECORD_URL, "the footer's View record link ({parent_tenant}, {tenant}, {record_id})")  # noqa: E501
    # the daemon (`run`)
    poll_interval: float = setting(60.0, "seconds between two audit-log polls of one organisation", flag=True, ge=1, le=86400)  # noqa: E501
    ops_host: str = setting(OPS_HOST, "address of /healthz, /readyz and /metrics", flag=True, min_length=1)  # noqa: E501
    ops_port: int = setting(9464, "port of the ops endpoints (0: any free port)", flag=True, ge=0, le=65535)  # noqa: E501
    publish_workers: int = setting(8, "publish jobs (a republish-all's units: one per organisation) one replica runs at once", flag=True, ge=1, le=64)  # noqa: E501
    publish_concurrency: int = setting(16, "Anthropic API calls in flight at most across all publish jobs of one replica", flag=True, ge=1, le=256)  # noqa: E501
    org_concurrency: int = setting(16, "Anthropic API calls in flight at most per organisation (its rate limit), per replica", flag=True, ge=1, le=256)  # noqa: E501
    drift_interval: float = setting(3600.0, "seconds between drift checks (a forced republish-all)", flag=True, ge=1)  # noqa: E501
    rollout_interval: float = setting(30.0, "seconds between two looks at the running rollout (moves the next wave, halts on a guardrail)", ge=0.1, le=3600)  # noqa: E501
    job_fallback_interval: float = setting(5.0, "seconds between queue checks when no NOTIFY arrives", flag=True, ge=0.1, le=3600)  # noqa: E501
    log_format: Literal["json", "console"] = setting("json", "the daemon's log lines: json or console", flag=True)  # noqa: E501
    # telemetry of Claude Enterprise organisations (issue 16)
    analytics_interval: float = setting(3600.0, "seconds between two skills-analytics runs of one Claude Enterprise organisation", ge=1)  # noqa: E501
    analytics_window_days: int = setting(7, "days of skills analytics read again on each run (Anthropic revises them)", ge=1, le=366)  # noqa: E501
    analytics_backfill_days: int = setting(30, "days of skills analytics read on an organisation's first run", ge=1, le=366)  # noqa: E501
    analytics_breakdowns: str = setting("user,rbac_group", "breakdowns stored beside the per-skill daily rows: user, rbac_group, comma-separated (empty: none)")  # noqa: E501
    activity_interval: float = setting(60.0, "seconds between two reads of one Claude Enterprise organisation's activity feed", ge=1)  # noqa: E501
    activity_backfill_days: int = setting(30, "days of the activity feed read on an organisation's first run", ge=1)  # noqa: E501
    # the Command Center: operator HTTP API and console (claresia_sync/center/), served by `run`
    center_host: str = setting("127.0.0.1", "address of the Command Center (operator API and console)", flag=True, min_length=1)  # noqa: E501
    center_port: int = setting(9480, "port of the Command Center (0: any free port)", flag=True, ge=0, le=65535)  # noqa: E501
    center_tokens: str | None = setting(None, "Command Center tokens NAME:ROLE:REF,... (role viewer or operator, REF env:NAME or file:/path); none: no Command Center", flag=True, secret=True)  # noqa: E501
    otlp_host: str = setting(OPS_HOST, "address of the Claude Code OTLP/HTTP logs receiver (POST /v1/logs)", flag=True, min_length=1)  # noqa: E501
    otlp_port: int = setting(0, "port of the Claude Code OTLP/HTTP logs receiver (0: no receiver; the OTLP default is 4318)", flag=True, ge=0, le=65535)  # noqa: E501
    otlp_max_body_bytes: int = setting(4 * 2**20, "largest OTLP export accepted, compressed or inflated (larger: 413)", flag=True, ge=1024)  # noqa: E501
    # fmt: on

    @field_validator("state_dir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    @field_validator("analytics_breakdowns")
    @classmethod
    def _breakdowns(cls, value: str) -> str:
        names = [n.strip() for n in value.split(",") if n.strip()]
        unknown = [n for n in names if n not in ("user", "rbac_group")]
        if unknown:
            raise ValueError(f"unknown breakdown {unknown[0]!r}: use user, rbac_group or both")
        return ",".join(names)

    @property
    def sources(self) -> SourceSettings:
        return SourceSettings(
            analytics_window_days=self.analytics_window_days,
            analytics_backfill_days=self.analytics_backfill_days,
            analytics_breakdowns=tuple(n for n in self.analytics_breakdowns.split(",") if n),
            activity_backfill_days=self.activity_backfill_days,
        )

    @field_validator("center_tokens")
    @classmethod
    def _center_tokens(cls, value: str | None) -> str | None:
        parse_tokens(value or "")  # one line naming the bad entry
        return value

    @field_validator("hub_record_url")
    @classmethod
    def _link_template(cls, value: str) -> str:
        problem = link_template_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Flags (init values) over the environment; no .env file or secrets dir behind our back.
        return (init_settings, env_settings)

    @classmethod
    def load(cls, flags: Mapping[str, Any] | None = None) -> Settings:
        """Settings from `flags` (field -> value given on the command line, None: not given)
        over the `CLARESIA_*` environment over the defaults.

        A bad value is a `UserError` of one line naming each bad flag or variable and what it
        expects; exit code 2 (usage) when a flag is wrong, else 1 (configuration)."""
        given = {k: v for k, v in (flags or {}).items() if v is not None}
        try:
            return cls(**given)
        except ValidationError as exc:
            errors = exc.errors()
            usage = any(_field_of(e) in given for e in errors)
            raise UserError(
                "; ".join(_describe(e, given) for e in errors),
                exit_code=ExitCode.USAGE if usage else ExitCode.ERROR,
            ) from None

    @property
    def telemetry(self) -> TelemetrySettings:
        return TelemetrySettings(
            retention_days=self.telemetry_retention_days,
            store_emails=self.telemetry_store_emails,
            hub_record_url=self.hub_record_url,
            otlp_usage_wait_hours=self.otlp_usage_wait_hours,
        )

    @property
    def center_token_specs(self) -> tuple[TokenSpec, ...]:
        return parse_tokens(self.center_tokens or "")

    def source_of(self, name: str) -> str:
        """Where the value came from: `flag`, `env` or `default` (for `config show`)."""
        if name not in self.model_fields_set:
            return "default"
        return "env" if os.environ.get(env_name(name), "").strip() else "flag"


def env_name(field: str) -> str:
    return ENV_PREFIX + field.upper()


def flag_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def field_info(name: str) -> FieldInfo:
    return Settings.model_fields[name]


def _extra(name: str, key: str) -> bool:
    extra = field_info(name).json_schema_extra
    return isinstance(extra, dict) and bool(extra.get(key))


def is_secret(name: str) -> bool:
    return _extra(name, "secret")


def has_flag(name: str) -> bool:
    return _extra(name, "flag")


def default_of(name: str) -> Any:
    return field_info(name).get_default(call_default_factory=True)


def flag_help(name: str) -> str:
    """`run --help` text of a setting's flag, from its field: meaning, variable, default."""
    return f"{field_info(name).description} [env {env_name(name)}; default {default_of(name)}]"


def _field_of(err: ErrorDetails) -> str:
    return str(err["loc"][0]) if err["loc"] else ""


def _describe(err: ErrorDetails, given: Mapping[str, Any]) -> str:
    name = _field_of(err)
    message = err["msg"].removeprefix("Value error, ").removeprefix("Input should be ")
    message = message.split(", unable to")[0]
    if name not in Settings.model_fields:
        return message
    if name in given:  # a secret setting's flag value is not echoed either
        where = flag_name(name) if is_secret(name) else f"{flag_name(name)} {given[name]}"
    elif is_secret(name):  # a pasted secret is not echoed
        where = env_name(name)
    else:
        where = f"{env_name(name)}={os.environ.get(env_name(name), '').strip()!r}"
    if err["type"] == "value_error":
        return f"{where}: {message}"
    return f"{where}: must be {message} — {field_info(name).description}"


# --- the settings of this process -------------------------------------------------------------

_current: Settings | None = None
_keep_first_read = False


def read_once() -> None:
    """From now on the first read is the process's settings (the CLI calls this at start; a
    command reads them when it first needs them, so `--help` never fails on a bad variable)."""
    global _keep_first_read
    _keep_first_read = True


def use_settings(settings: Settings) -> Settings:
    """Make `settings` the process's settings (`run`: the environment with its flags over it)."""
    global _current
    _current = settings
    return settings


def load_settings() -> Settings:
    """The process's settings. Outside the CLI (library use, tests) they are read afresh from
    the environment on each call, since a test's environment may change between calls."""
    if _current is not None:
        return _current
    settings = Settings.load()
    return use_settings(settings) if _keep_first_read else settings
