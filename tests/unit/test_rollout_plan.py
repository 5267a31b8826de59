"""Rollout plans (claresia_sync/rollout/plan.py): strict YAML with every bad field named, the
default plan, and waves resolved in a stable order."""

from __future__ import annotations

import hashlib

import pytest

from claresia_sync.errors import UserError
from claresia_sync.rollout.plan import DEFAULT_PLAN, Guardrails, parse_plan, resolve_waves

TENANTS = [f"t{i:02d}" for i in range(10)]


def _problems(text: str) -> list[str]:
    with pytest.raises(UserError) as caught:
        parse_plan(text, "plan.yaml")
    return str(caught.value).splitlines()


def test_every_bad_field_is_named_with_the_file() -> None:
    assert _problems(
        "guardrails: {min_invocatons: 3}\n"
        "waves:\n"
        "  - {share: 120%}\n"
        "  - {count: 2, soak: 5x}\n"
        "  - {tenants: [a], share: 10%}\n"
    ) == [
        "plan.yaml: guardrails.min_invocatons: unknown key (allowed here: min_invocations, "
        "max_failure_rate_increase, max_failure_rate, max_quarantine_growth)",
        "plan.yaml: waves[0].share: Input should be less than or equal to 1",
        "plan.yaml: waves[1].soak: '5x' is not a duration such as 30m, 2h or 90s",
        "plan.yaml: waves[2]: a wave names its tenants, or gives a share (25%) or a count of "
        "the remaining ones: exactly one of tenants, share, count (given: tenants, share)",
    ]
    assert _problems("waves: []") == [
        "plan.yaml: waves: List should have at least 1 item after validation, not 0"
    ]
    assert _problems("- a list") == [
        "plan.yaml: a plan is a mapping with `waves:` (docs/releases.md)"
    ]
    assert _problems("waves: [")[0].startswith("plan.yaml: not valid YAML:")


def test_durations_shares_and_wave_guardrails_over_the_plans() -> None:
    plan = parse_plan(
        "guardrails: {min_invocations: 50, max_failure_rate_increase: 2%}\n"
        "waves:\n"
        "  - {name: canary, tenants: [t03], soak: 30m, guardrails: {min_invocations: 5}}\n"
        "  - {share: 0.5, soak: 2h}\n"
        "  - {share: 100%, soak: 90}\n",
        "p.yaml",
    )
    assert [w.soak for w in plan.waves] == [1800, 7200, 90]
    assert plan.guardrails_of(plan.waves[0]) == Guardrails(
        min_invocations=5, max_failure_rate_increase=0.02
    )
    assert plan.guardrails_of(plan.waves[1]).min_invocations == 50
    waves = resolve_waves(plan, TENANTS, set(TENANTS))
    assert waves[0].tenants == ["t03"] and waves[0].name == "canary"
    order = sorted(
        (t for t in TENANTS if t != "t03"), key=lambda s: hashlib.sha256(s.encode()).hexdigest()
    )
    assert waves[1].tenants == order[:5]  # ceil(50% of 9)
    assert waves[2].tenants == order[5:]
    assert waves[2].name == "wave 3"


def test_the_default_plan_is_a_canary_then_half_then_the_rest() -> None:
    waves = resolve_waves(DEFAULT_PLAN, TENANTS, set(TENANTS))
    assert [len(w.tenants) for w in waves] == [1, 5, 4]
    assert [w.name for w in waves] == ["canary", "half", "rest"]
    assert [w.soak_s for w in waves] == [3600, 3600, 0]
    assert sorted(t for w in waves for t in w.tenants) == TENANTS
    assert resolve_waves(DEFAULT_PLAN, TENANTS[:1], {"t00"})[1].tenants == []


def test_named_tenants_must_be_root_tenants_not_on_the_release() -> None:
    plan = parse_plan("waves: [{tenants: [t01, sub, t02]}, {tenants: [t01]}]", "p.yaml")
    with pytest.raises(UserError) as caught:
        resolve_waves(plan, ["t01"], {"t01", "t02"}, "p.yaml")
    assert str(caught.value).splitlines() == [
        "p.yaml: waves[0].tenants: 'sub' is not a root tenant (sub-tenants follow their root; see "
        "`tenants list`)",
        "p.yaml: waves[0].tenants: 't02' is on this release already",
        "p.yaml: waves[1].tenants: 't01' is in waves[0] too",
    ]
