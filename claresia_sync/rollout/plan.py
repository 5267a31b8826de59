"""A rollout plan (docs/releases.md, "Rolling out"): YAML read strictly with pydantic, every
problem named as `FILE: waves[1].share: ...`, and its waves resolved to tenants.

    guardrails:                  # every wave's, unless a wave sets its own (field by field)
      min_invocations: 20
      max_failure_rate_increase: 5%
      max_quarantine_growth: 10
    waves:
      - {name: canary, tenants: [acme], soak: 1h}
      - {name: half, share: 50%, soak: 1h}
      - {name: rest, share: 100%, soak: 0s}

A wave names its tenants, or takes a `share` (of the tenants no earlier wave took) or a `count`
of them, in a stable order: by the sha256 of the slug, so the same tenants come first in every
rollout (the canary is always the same customer).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from claresia_sync.errors import UserError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}
_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")


def _seconds(value: Any) -> Any:
    """`90`, `90s`, `30m`, `2h`, `1d` -> seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration such as 30m, 2h or 90s")
    if isinstance(value, int | float):
        return float(value)
    match = _DURATION.match(str(value))
    if match is None:
        raise ValueError(f"{value!r} is not a duration such as 30m, 2h or 90s")
    return float(match.group(1)) * _UNITS[match.group(2)]


def _fraction(value: Any) -> Any:
    """`25%` or 0.25 -> 0.25."""
    if isinstance(value, bool):
        raise ValueError("a share such as 25% or 0.25")
    if isinstance(value, str):
        match = _PERCENT.match(value)
        if match is None:
            raise ValueError(f"{value!r} is not a share such as 25% or 0.25")
        return float(match.group(1)) / 100
    return value


Seconds = Annotated[float, BeforeValidator(_seconds), Field(ge=0, le=366 * 86400)]
Fraction = Annotated[float, BeforeValidator(_fraction), Field(ge=0, le=1)]


class Guardrails(BaseModel):
    """What a wave must show before the next one starts; every field optional in the file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_invocations: int = Field(20, ge=0)
    """New-content invocations (of the changed skills, in the wave's tenants) before judging."""
    max_failure_rate_increase: Fraction = 0.05
    """New content's failure rate minus the old content's, over the same window."""
    max_failure_rate: Fraction | None = None
    """Judged when the old content has too few invocations to compare with (None: not judged)."""
    max_quarantine_growth: int = Field(10, ge=0)
    """Events quarantined for the wave's organisations since it started, beyond the count of the
    same length of time before it."""


class GuardrailsPatch(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    min_invocations: int | None = Field(None, ge=0)
    max_failure_rate_increase: Fraction | None = None
    max_failure_rate: Fraction | None = None
    max_quarantine_growth: int | None = Field(None, ge=0)


class Wave(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = Field(None, min_length=1)
    tenants: list[str] | None = Field(None, min_length=1)
    share: Fraction | None = None
    count: int | None = Field(None, ge=1)
    soak: Seconds = 3600.0
    guardrails: GuardrailsPatch | None = None

    @model_validator(mode="after")
    def _one_way_to_choose(self) -> Wave:
        given = [k for k in ("tenants", "share", "count") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "a wave names its tenants, or gives a share (25%) or a count of the remaining "
                f"ones: exactly one of tenants, share, count (given: {', '.join(given) or 'none'})"
            )
        return self


class Plan(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    guardrails: Guardrails = Guardrails()
    waves: list[Wave] = Field(min_length=1)

    def guardrails_of(self, wave: Wave) -> Guardrails:
        if wave.guardrails is None:
            return self.guardrails
        patch = wave.guardrails.model_dump(exclude_none=True)
        return self.guardrails.model_copy(update=patch)


DEFAULT_PLAN = Plan(
    waves=[
        Wave(name="canary", count=1, soak=3600),
        Wave(name="half", share=0.5, soak=3600),
        Wave(name="rest", share=1.0, soak=0),
    ]
)
"""Without `--plan`: one canary tenant, then half of the others, then the rest; an hour's soak
after each of the first two, the default guardrails (docs/releases.md)."""


def _where(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif "[" not in part:  # not a validator's own name (`function-before[...]`)
            out += f".{part}" if out else part
    return out or "(plan)"


def _message(error: Any) -> str:
    if error["type"] == "extra_forbidden":
        loc = [p for p in error["loc"][:-1] if not isinstance(p, int)]
        models: dict[Any, type[BaseModel]] = {"guardrails": Guardrails, "waves": Wave}
        model = models.get(loc[-1] if loc else "", Plan)
        return f"unknown key (allowed here: {', '.join(model.model_fields)})"
    return str(error["msg"]).removeprefix("Value error, ")


def parse_plan(text: str, source: str) -> Plan:
    """The plan in `text` (YAML), or a UserError naming `source` and each bad field."""
    try:
        data = yaml.safe_load(text)
    except RecursionError:
        raise UserError(f"{source}: nested too deeply to be a plan") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{source}: not valid YAML: {exc}".replace("\n", " ")) from exc
    if not isinstance(data, dict):
        raise UserError(f"{source}: a plan is a mapping with `waves:` (docs/releases.md)")
    try:
        return Plan.model_validate(data)
    except ValidationError as exc:
        problems = [f"{source}: {_where(e['loc'])}: {_message(e)}" for e in exc.errors()]
        raise UserError("\n".join(problems)) from None


def load_plan(path: Path) -> Plan:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"{path}: cannot read the plan: {exc.strerror}") from exc
    return parse_plan(text, str(path))


def stable_order(slugs: Sequence[str]) -> list[str]:
    """The order shares and counts take tenants in: by sha256 of the slug (then the slug)."""
    return sorted(slugs, key=lambda s: (hashlib.sha256(s.encode()).hexdigest(), s))


@dataclass(frozen=True)
class ResolvedWave:
    number: int
    name: str
    tenants: list[str]
    soak_s: float
    guardrails: Guardrails


def resolve_waves(
    plan: Plan, eligible: Sequence[str], roots: set[str], source: str = "(plan)"
) -> list[ResolvedWave]:
    """Each wave's tenants among `eligible` (root tenants not on the release yet). Named
    tenants are taken first; then shares and counts of the rest, wave by wave, in stable order.
    A named tenant must be a root tenant (`roots`) that is eligible."""
    named: dict[str, int] = {}
    problems = []
    for i, wave in enumerate(plan.waves):
        for slug in wave.tenants or []:
            if slug not in roots:
                problems.append(
                    f"waves[{i}].tenants: {slug!r} is not a root tenant (sub-tenants follow their "
                    "root; see `tenants list`)"
                )
            elif slug not in eligible:
                problems.append(f"waves[{i}].tenants: {slug!r} is on this release already")
            elif slug in named:
                problems.append(f"waves[{i}].tenants: {slug!r} is in waves[{named[slug]}] too")
            else:
                named[slug] = i
    if problems:
        raise UserError("\n".join(f"{source}: {p}" for p in problems))
    remaining = [s for s in stable_order(eligible) if s not in named]
    out = []
    for i, wave in enumerate(plan.waves):
        if wave.tenants is not None:
            chosen = stable_order(wave.tenants)
        else:
            if wave.share is not None:
                n = math.ceil(wave.share * len(remaining) - 1e-9)
            else:
                n = min(wave.count or 0, len(remaining))
            chosen, remaining = remaining[:n], remaining[n:]
        out.append(
            ResolvedWave(
                i + 1, wave.name or f"wave {i + 1}", chosen, wave.soak, plan.guardrails_of(wave)
            )
        )
    return out
