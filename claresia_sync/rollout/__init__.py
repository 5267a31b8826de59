"""Rollouts (docs/releases.md): a release moved to the tenants in waves (`plan.py`, `state.py`),
advanced by the daemon as each wave's guardrails pass (`advance.py`, `guardrails.py`)."""
