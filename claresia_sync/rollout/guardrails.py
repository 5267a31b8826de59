"""A wave's guardrail readings, from telemetry attributed to the content live when it happened
(the view `telemetry_by_release`, migration 0019).

For the skills the release changed for the wave's tenants (changed or added between each
one's previous release and the rollout's), over the window since the wave started:
- the failure rate of the **new content** (events whose live release has the rollout's IR of
  the skill) in the wave's tenants, against that of the **old content** (any other IR of the
  skill) in any tenant over the same window; with too little old-content use in the window,
  against the wave's own tenants over the same length of time before the wave;
- judged per skill and for all of them together, once the new content has `min_invocations`;
  without an old-content figure, against `max_failure_rate` when the plan sets one;
- quarantine growth: events quarantined for the wave's organisations in the window, minus
  those of the same length of time before it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from claresia_sync.release_store import diff_releases
from claresia_sync.rollout.plan import Guardrails

ALL = "(all changed skills)"

# (tenant, skill) pairs come as two arrays; the IR of a skill in a release from
# catalog_release_skill, so "new" is the rollout's IR wherever it is live, "old" any other.
_USE = text("""
SELECT t.skill_id,
       count(*) FILTER (WHERE cur.ir_hash = new.ir_hash) AS new_n,
       count(*) FILTER (WHERE cur.ir_hash = new.ir_hash AND t.status = 'failed') AS new_failed,
       count(*) FILTER (WHERE cur.ir_hash <> new.ir_hash) AS old_n,
       count(*) FILTER (WHERE cur.ir_hash <> new.ir_hash AND t.status = 'failed') AS old_failed
  FROM telemetry_by_release t
  JOIN catalog_release_skill cur ON cur.release = t.release AND cur.skill_id = t.skill_id
  JOIN catalog_release_skill new ON new.release = :release AND new.skill_id = t.skill_id
 WHERE t.occurred_at >= :since AND t.occurred_at < :until
   AND t.skill_id = ANY(CAST(:skills AS text[]))
   AND (CAST(:tenants AS text[]) IS NULL
        OR (t.root_tenant_slug, t.skill_id) IN (
            SELECT * FROM unnest(CAST(:tenants AS text[]), CAST(:pair_skills AS text[]))))
 GROUP BY t.skill_id
""")

_QUARANTINED = text("""
SELECT count(*) FILTER (WHERE q.received_at >= :since) AS during,
       count(*) FILTER (WHERE q.received_at < :since) AS before
  FROM telemetry_quarantine q
 WHERE q.received_at >= :before AND q.received_at < :until
   AND q.org_id IN (SELECT c.org_id FROM org_connection c JOIN tenant t ON t.id = c.tenant_id
                     WHERE t.slug = ANY(CAST(:tenants AS text[]))
                    UNION
                    SELECT tt.org_id FROM tenant_target tt JOIN tenant t ON t.id = tt.tenant_id
                     WHERE t.slug = ANY(CAST(:tenants AS text[])))
""")


@dataclass(frozen=True)
class SkillReading:
    skill_id: str
    new_invocations: int
    new_failures: int
    old_invocations: int
    old_failures: int
    old_from: str | None
    """`same window`, `before the wave`, or None: no old-content figure to compare with."""

    @property
    def new_rate(self) -> float | None:
        return self.new_failures / self.new_invocations if self.new_invocations else None

    @property
    def old_rate(self) -> float | None:
        if self.old_from is None or not self.old_invocations:
            return None
        return self.old_failures / self.old_invocations

    def as_json(self) -> dict[str, Any]:
        return {
            "skill_id": self.skill_id,
            "new_invocations": self.new_invocations,
            "new_failures": self.new_failures,
            "new_failure_rate": self.new_rate,
            "old_invocations": self.old_invocations,
            "old_failures": self.old_failures,
            "old_failure_rate": self.old_rate,
            "old_from": self.old_from,
        }


@dataclass(frozen=True)
class Readings:
    since: dt.datetime
    until: dt.datetime
    skills: list[SkillReading]
    quarantined: int
    quarantined_before: int
    guardrails: Guardrails
    tripped: list[str] = field(default_factory=list)
    enough: bool = False
    """The new content has been used `min_invocations` times (or no skill changed)."""

    @property
    def verdict(self) -> str:
        return "tripped" if self.tripped else "pass" if self.enough else "waiting"

    def as_json(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "verdict": self.verdict,
            "tripped": self.tripped,
            "skills": [s.as_json() for s in self.skills],
            "quarantined": self.quarantined,
            "quarantined_before": self.quarantined_before,
            "quarantine_growth": self.quarantined - self.quarantined_before,
            "guardrails": self.guardrails.model_dump(mode="json"),
        }


def changed_skills(
    session: Session, release: int, previous: dict[str, int]
) -> dict[str, list[str]]:
    """Per tenant (its previous release in `previous`), the skills `release` changes or adds."""
    by_release: dict[int, list[str]] = {}
    for old in set(previous.values()):
        by_release[old] = sorted(
            c.skill_id
            for c in diff_releases(session, old, release)
            if c.change in ("changed", "added")
        )
    return {tenant: by_release[old] for tenant, old in previous.items()}


def read(
    session: Session,
    release: int,
    previous: dict[str, int],
    since: dt.datetime,
    until: dt.datetime,
    guardrails: Guardrails,
) -> Readings:
    """The readings of a wave whose tenants were on `previous` (tenant -> release) and moved at
    `since`, at `until`."""
    changed = changed_skills(session, release, previous)
    pairs = [(t, s) for t, skills in sorted(changed.items()) for s in skills]
    skills = sorted({s for _, s in pairs})
    tenants = sorted(previous)
    length = until - since
    mine = _use(session, release, skills, pairs, since, until)
    window = _use(session, release, skills, None, since, until)
    before = _use(session, release, skills, pairs, since - length, since)
    readings = []
    enough = guardrails.min_invocations
    for skill in [*skills, ALL]:
        new_n, new_f = mine.get(skill, (0, 0, 0, 0))[:2]
        old_from: str | None = "same window"
        old_n, old_f = window.get(skill, (0, 0, 0, 0))[2:]
        if old_n < max(enough, 1):
            old_n, old_f = before.get(skill, (0, 0, 0, 0))[2:]
            old_from = "before the wave"
        if old_n < max(enough, 1):
            old_from = None
        readings.append(SkillReading(skill, new_n, new_f, old_n, old_f, old_from))
    quarantined, quarantined_before = 0, 0
    if tenants:
        row = session.execute(
            _QUARANTINED,
            {"tenants": tenants, "since": since, "until": until, "before": since - length},
        ).one()
        quarantined, quarantined_before = int(row.during), int(row.before)
    total = readings[-1]
    return Readings(
        since,
        until,
        readings,
        quarantined,
        quarantined_before,
        guardrails,
        _tripped(readings, quarantined - quarantined_before, guardrails),
        not skills or total.new_invocations >= enough,
    )


def _use(
    session: Session,
    release: int,
    skills: list[str],
    pairs: list[tuple[str, str]] | None,
    since: dt.datetime,
    until: dt.datetime,
) -> dict[str, tuple[int, int, int, int]]:
    """skill (and ALL) -> (new n, new failed, old n, old failed); `pairs`: only those (tenant,
    skill), None: every tenant."""
    if not skills or since >= until:
        return {}
    rows = session.execute(
        _USE,
        {
            "release": release,
            "since": since,
            "until": until,
            "skills": skills,
            "tenants": None if pairs is None else [t for t, _ in pairs],
            "pair_skills": None if pairs is None else [s for _, s in pairs],
        },
    ).all()
    out = {r.skill_id: (r.new_n, r.new_failed, r.old_n, r.old_failed) for r in rows}
    out[ALL] = tuple(sum(v[i] for v in out.values()) for i in range(4))
    return out


def _pct(rate: float) -> str:
    return f"{rate * 100:.1f}%"


def _tripped(readings: list[SkillReading], growth: int, g: Guardrails) -> list[str]:
    out = []
    for r in readings:
        if r.new_rate is None or r.new_invocations < g.min_invocations:
            continue  # not judged yet
        old = r.old_rate
        if old is not None and r.new_rate - old > g.max_failure_rate_increase:
            out.append(
                f"{r.skill_id}: the new content failed {_pct(r.new_rate)} of "
                f"{r.new_invocations} invocations against {_pct(old)} of {r.old_invocations} "
                f"for the old content ({r.old_from}); at most "
                f"{g.max_failure_rate_increase * 100:.1f} points more are allowed"
            )
        elif old is None and g.max_failure_rate is not None and r.new_rate > g.max_failure_rate:
            out.append(
                f"{r.skill_id}: the new content failed {_pct(r.new_rate)} of "
                f"{r.new_invocations} invocations (no old-content figure to compare with); at "
                f"most {_pct(g.max_failure_rate)} is allowed"
            )
    if growth > g.max_quarantine_growth:
        out.append(
            f"quarantine: {growth} more events quarantined for the wave's organisations than "
            f"in the same time before it; at most {g.max_quarantine_growth} are allowed"
        )
    return out
