"""Hypothesis profiles of the unit lane. The default (CI, by hand) runs each property test's own
number of examples; `mutmut` (pyproject's [tool.mutmut] selects it with --hypothesis-profile)
runs few, so that one mutant costs seconds rather than a minute: mutation testing runs the tests
that reach a function once per mutant of it, hundreds of times.

A test that sets its own `max_examples` overrides any profile (Hypothesis's rule), so such a
test asks `examples(n)` for its count rather than writing `n`."""

from __future__ import annotations

from hypothesis import HealthCheck, settings

MUTMUT = "mutmut"
settings.register_profile(
    MUTMUT,
    max_examples=50,
    deadline=None,  # mutmut's trampolines make each call slower; its own timeouts bound a run
    database=None,  # no failure found for one mutant replayed for the next: a run per mutant
    suppress_health_check=[HealthCheck.too_slow],
)


def examples(n: int) -> int:
    """`n`, or the `mutmut` profile's fewer examples when that profile is loaded (at pytest's
    configure, before the test modules are imported and their decorators read this)."""
    if settings.get_current_profile_name() == MUTMUT:
        return min(n, settings.get_profile(MUTMUT).max_examples)
    return n
